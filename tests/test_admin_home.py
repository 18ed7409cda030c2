"""The admin home: what needs staff today, each figure linking to the list it counts; revenue at risk; the
last tick (recorded from ``tick_finished``); recent staff actions. A fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config.models import TickRun
from customers.actors import Actor
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CircuitState,
    DoublePayment,
    GatewayCircuit,
    PaymentAttempt,
    StripeEvent,
    StripeEventStatus,
)
from dunning.services.staff import case_hand_off, case_record_offline_payment
from dunning.services.tick import run_tick
from notifications.models import NotificationStatus
from tests.factories import (
    NotificationFactory,
    StaffTaskFactory,
    WebhookEndpointFactory,
    failed_invoice,
)

pytestmark = pytest.mark.django_db

STAFF = Actor.system("test")


def build_attention(copies: int) -> None:
    """``copies`` of every kind of thing the home counts, and things it must not count."""
    now = timezone.now()
    for n in range(copies):
        failed_invoice(decline_code="fraudulent")  # flagged for review
        handed, _, _ = failed_invoice()
        case_hand_off(case=handed, actor=STAFF, reason="agency")
        StaffTaskFactory()
        failed_invoice(decline_code=f"never_seen_before_{n}")  # an unclassified code
        WebhookEndpointFactory(failing_since=now - timedelta(hours=2))
        WebhookEndpointFactory(enabled=False, disabled_reason="failing for 72 hours")
        NotificationFactory(status=NotificationStatus.QUEUED, send_after=now - timedelta(hours=1))
        NotificationFactory(status=NotificationStatus.FAILED)
        NotificationFactory(status=NotificationStatus.BOUNCED)
        case, invoice, method = failed_invoice(card="pm_sim_4242424242424242")
        PaymentAttempt.objects.create(
            invoice=invoice,
            case=case,
            payment_method=method,
            number=2,
            source=AttemptSource.RETRY,
            status=AttemptStatus.UNKNOWN,
            amount_minor=4900,
            currency="EUR",
            gateway="simulated",
        )
        StripeEvent.objects.create(
            event_id=f"evt_failed_{copies}_{n}",
            type="invoice.payment_failed",
            payload={},
            status=StripeEventStatus.FAILED,
        )
        _double_payment(status="open")
        GatewayCircuit.objects.create(gateway=f"gateway-{copies}-{n}", state=CircuitState.OPEN)
    # Not counted: a queued email not due yet, an old bounce, a healthy endpoint, a refunded double payment,
    # a closed breaker.
    _double_payment(status="refunded")
    GatewayCircuit.objects.create(gateway=f"gateway-{copies}-closed")
    NotificationFactory(status=NotificationStatus.QUEUED, send_after=now + timedelta(hours=3))
    NotificationFactory(status=NotificationStatus.BOUNCED, created_at=now - timedelta(days=8))
    WebhookEndpointFactory()  # last: the webhooks of the cases above never reach it


def _double_payment(*, status: str) -> None:
    case, invoice, method = failed_invoice(card="pm_sim_4242424242424242")
    attempt = PaymentAttempt.objects.create(
        invoice=invoice,
        case=case,
        payment_method=method,
        number=2,
        source=AttemptSource.STAFF,
        status=AttemptStatus.DUPLICATE,
        amount_minor=4900,
        currency="EUR",
        gateway="simulated",
        gateway_reference=f"sim_dup_{invoice.pk}",
    )
    DoublePayment.objects.create(
        attempt=attempt,
        invoice=invoice,
        customer=invoice.customer,
        case=case,
        reason="already_paid",
        status=status,
        amount_minor=4900,
        currency="EUR",
        gateway="simulated",
    )


def _items(response) -> dict:  # type: ignore[no-untyped-def]
    return {item.key: item for item in response.context["home"].items}


def test_every_figure_counts_what_needs_staff_and_links_to_exactly_those_rows(admin_client) -> None:  # type: ignore[no-untyped-def]
    build_attention(copies=2)
    response = admin_client.get(reverse("admin:index"))
    items = _items(response)
    assert {key: item.count for key, item in items.items()} == {
        "review": 2,
        "handed_off": 2,
        "staff_tasks": 2,
        "unclassified_codes": 2,
        "unknown_attempts": 2,
        "stripe_failed": 2,
        "webhooks_failing": 2,
        "webhooks_disabled": 2,
        "outbox_backlog": 2,
        "outbox_failed": 2,
        "outbox_bounced": 2,
        "double_payments": 2,
        "gateway_paused": 2,
    }
    for key, item in items.items():
        listed = admin_client.get(item.url)
        assert listed.status_code == 200, key
        assert listed.context["cl"].result_count == item.count, (key, item.url)
    assert "Needs attention today" in response.content.decode()


def test_the_home_runs_a_fixed_number_of_queries(admin_client) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:index")

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured.captured_queries)

    build_attention(copies=1)
    case, _, _ = failed_invoice()
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "note"]), {"text": "n"})
    run_tick()
    small = count()
    build_attention(copies=2)
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "note"]), {"text": "m"})
    run_tick()
    assert count() == small
    assert small <= 25, small


def test_revenue_at_risk_is_what_is_left_to_pay_on_open_and_paused_cases_per_currency(admin_client) -> None:  # type: ignore[no-untyped-def]
    euro, _, _ = failed_invoice(amount_minor=10_000)
    case_record_offline_payment(case=euro, actor=STAFF, reference="part", amount_minor=2_500)
    failed_invoice(amount_minor=1_000)
    yen, _, _ = failed_invoice(amount_minor=5_000, currency="JPY")
    paid, _, _ = failed_invoice(amount_minor=99_999)
    case_record_offline_payment(case=paid, actor=STAFF, reference="all of it")
    rows = admin_client.get(reverse("admin:index")).context["home"].at_risk
    assert [(r.currency, r.amount_minor, r.cases, r.amount) for r in rows] == [
        ("EUR", 8_500, 2, "€85.00"),
        ("JPY", 5_000, 1, "¥5,000"),
    ]
    listed = admin_client.get(rows[0].url).context["cl"]
    assert {c.pk for c in listed.result_list} == {euro.pk, euro.pk + 1}
    assert yen.pk not in {c.pk for c in listed.result_list}


def test_each_tick_is_recorded_with_its_duration_and_a_late_tick_is_flagged(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    failed_invoice(failed_at=timezone.now() - timedelta(minutes=5))
    summary = run_tick()
    run = TickRun.objects.get()
    assert run.cases == summary.cases == 1
    assert run.duration_seconds is not None and 0 <= run.duration_seconds < 60
    assert run.counts.get("email", 0) >= 1
    tick = admin_client.get(reverse("admin:index")).context["home"].last_tick
    assert (tick.cases, tick.late) == (1, False)

    run_tick(now=timezone.now() - timedelta(days=30))  # time travel: still its real duration
    travelled = TickRun.objects.order_by("-id").first()
    assert travelled.duration_seconds is not None and 0 <= travelled.duration_seconds < 60

    TickRun.objects.update(
        finished_at=timezone.now() - timedelta(minutes=3 * settings.DUNNING_TICK_MINUTES + 1)
    )
    page = admin_client.get(reverse("admin:index"))
    assert page.context["home"].last_tick.late
    assert "That is late" in page.content.decode()


def test_no_tick_yet_says_how_to_start_one(admin_client) -> None:  # type: ignore[no-untyped-def]
    content = admin_client.get(reverse("admin:index")).content.decode()
    assert "No tick has run yet" in content


def test_recent_staff_actions_fill_the_sidebar(admin_client, admin_user) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "pause"]), {"text": "Customer on holiday"}
    )
    admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "mark_paid"]),
        {
            "amount": "10.00",
            "paid_on": timezone.localdate().isoformat(),
            "method": "cheque",
            "reference": "chq 12",
        },
    )
    recent = admin_client.get(reverse("admin:index")).context["home"].recent
    whats = [action.what for action in recent]
    assert any(f"Case {case.pk} · State changed: paused · Customer on holiday" in what for what in whats)
    assert any("invoice.payment recorded" in what for what in whats)
    assert all(action.who == admin_user.username for action in recent)
    case_url = reverse("admin:dunning_dunningcase_change", args=[case.pk])
    assert case_url in {action.url for action in recent}


def test_staff_only_see_the_figures_they_may_open(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    build_attention(copies=1)
    staff_user.user_permissions.add(Permission.objects.get(codename="view_dunningcase"))
    client.force_login(staff_user)
    home = client.get(reverse("admin:index")).context["home"]
    assert [item.key for item in home.items] == ["review", "handed_off"]
    assert home.last_tick is None and home.recent == []
    assert home.at_risk
