"""The dunning admin: decline codes, policies (validation, publish, timeline) and the case queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.models import InvoiceStatus
from dunning.models import CaseEventKind, CaseState, DeclineCode, DunningPolicy, PaymentAttempt, PolicyVersion
from tests.factories import failed_invoice

pytestmark = pytest.mark.django_db


def policy_form(name: str, steps: list[tuple[int, int | None, str, str]], grace: int = 7) -> dict[str, str]:
    data = {
        "name": name,
        "description": "",
        "is_active": "on",
        "priority": "5",
        "max_retries": "4",
        "network_retry_cap": "15",
        "grace_period_days": str(grace),
        "match_segment": "",
        "match_currency": "",
        "match_payment_method_type": "",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    for index, (day, hour, action, template) in enumerate(steps):
        data.update(
            {
                f"steps-{index}-position": str(index + 1),
                f"steps-{index}-day_offset": str(day),
                f"steps-{index}-local_hour": "" if hour is None else str(hour),
                f"steps-{index}-action": action,
                f"steps-{index}-template_key": template,
            }
        )
    return data


def test_unclassified_codes_are_listed_for_staff_and_classifying_one_marks_it(admin_client) -> None:  # type: ignore[no-untyped-def]
    failed_invoice(decline_code="mystery_issuer_reason")
    url = reverse("admin:dunning_declinecode_changelist")
    listed = admin_client.get(url, {"classified": "no"}).context["cl"].result_list
    assert [code.code for code in listed] == ["mystery_issuer_reason"]
    code = DeclineCode.objects.get(code="mystery_issuer_reason")
    response = admin_client.post(
        reverse("admin:dunning_declinecode_change", args=[code.pk]),
        {
            "processor": "stripe",
            "code": "mystery_issuer_reason",
            "category": "hard",
            "customer_message": "Please use another card.",
            "staff_description": "",
            "is_classified": "",
        },
    )
    assert response.status_code == 302
    code.refresh_from_db()
    assert (code.category, code.is_classified) == ("hard", True)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([(3, 9, "retry", ""), (1, 9, "retry", "")], "day offsets must not decrease"),
        ([(1, 9, "mark_uncollectible", ""), (2, 9, "email", "failure_2")], "must be the last step"),
        ([(3, 9, "suspend", "")], "inside the 7-day grace period"),
        ([(1, None, "email", "")], "needs a template key"),
    ],
)
def test_the_policy_inline_refuses_invalid_step_lists(admin_client, steps, message) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(reverse("admin:dunning_dunningpolicy_add"), policy_form("Bad", steps))
    assert response.status_code == 200
    errors = " ".join(
        str(e)
        for formset in response.context["inline_admin_formsets"]
        for e in formset.formset.non_form_errors()
    )
    assert message in errors
    assert not DunningPolicy.objects.filter(name="Bad").exists()


def test_a_valid_policy_is_saved_published_and_previewed(admin_client) -> None:  # type: ignore[no-untyped-def]
    steps = [(0, None, "email", "failure_1"), (1, 9, "retry", ""), (8, 9, "suspend", "")]
    response = admin_client.post(reverse("admin:dunning_dunningpolicy_add"), policy_form("Good", steps))
    assert response.status_code == 302
    policy = DunningPolicy.objects.get(name="Good")
    change = admin_client.get(
        reverse("admin:dunning_dunningpolicy_change", args=[policy.pk])
    ).content.decode()
    assert "Day 8" in change and "Suspend access" in change
    publish_url = reverse("admin:dunning_dunningpolicy_publish", args=[policy.pk])
    assert "Publish" in admin_client.get(publish_url).content.decode()
    admin_client.post(publish_url, {"notes": "first"})
    version = PolicyVersion.objects.get(policy=policy)
    assert (version.number, len(version.steps), version.notes) == (1, 3, "first")
    timeline = admin_client.get(
        reverse("admin:dunning_dunningpolicy_timeline", args=[policy.pk]),
        {"tz": "Asia/Tokyo", "version": "1"},
    ).content.decode()
    assert "09:00" in timeline and "Asia/Tokyo" in timeline


def test_the_case_queue_runs_a_constant_number_of_queries(admin_client) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:dunning_dunningcase_changelist")

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured.captured_queries)

    for _ in range(3):
        failed_invoice()
    small = count()
    for _ in range(3):
        failed_invoice()
    assert count() == small


def test_queue_filters_by_amount_band_in_each_currency(admin_client) -> None:  # type: ignore[no-untyped-def]
    small, _, _ = failed_invoice(amount_minor=5_000)  # €50
    big, _, _ = failed_invoice(amount_minor=500_000)  # €5,000
    yen, _, _ = failed_invoice(amount_minor=5_000, currency="JPY")  # ¥5,000
    url = reverse("admin:dunning_dunningcase_changelist")
    band = admin_client.get(url, {"amount": "1k-10k"}).context["cl"].result_list
    assert {case.pk for case in band} == {big.pk, yen.pk}
    assert [c.pk for c in admin_client.get(url, {"amount": "lt100"}).context["cl"].result_list] == [small.pk]


def test_the_case_page_shows_attempts_events_and_steps_to_come(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    content = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).content.decode()
    assert "insufficient_funds (soft)" in content
    assert "To come:" in content and "Retry the charge" in content
    assert "Retry now" in content and "Hand off to collections" in content


def test_staff_actions_need_their_permissions(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    client.force_login(staff_user)
    staff_user.user_permissions.add(Permission.objects.get(codename="view_dunningcase"))
    pause_url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "pause"])
    assert client.post(pause_url, {"text": "Customer on holiday"}).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="manage_dunningcase"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)  # drop the permission cache
    client.force_login(staff_user)
    assert client.post(pause_url, {"text": "Customer on holiday"}).status_code == 302
    case.refresh_from_db()
    assert case.state == CaseState.PAUSED
    retry_url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"])
    assert client.post(retry_url).status_code == 403


def test_retry_now_asks_for_confirmation_then_charges_once(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242")
    url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"])
    page = admin_client.get(url).content.decode()
    assert "Yes, charge €49.00" in page
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1  # GET changes nothing
    admin_client.post(url)
    case.refresh_from_db()
    invoice.refresh_from_db()
    assert (case.state, case.recovery_channel, invoice.status) == (
        CaseState.RECOVERED,
        "staff",
        InvoiceStatus.PAID,
    )
    admin_client.post(url)  # a second click: the invoice is paid, nothing is charged
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 2


def test_mark_paid_needs_a_reference_and_records_it(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice()
    url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "mark_paid"])
    form = {"amount": "49.00", "paid_on": timezone.localdate().isoformat(), "method": "bank_transfer"}
    response = admin_client.post(url, {**form, "reference": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["reference"] == ["This field is required."]
    admin_client.post(url, {**form, "reference": "SEPA transfer 2026-0412"})
    case.refresh_from_db()
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, "staff")
    assert case.events.filter(kind=CaseEventKind.NOTE, reason__contains="SEPA transfer 2026-0412").exists()


def test_hand_off_and_notes_are_audited(admin_client, admin_user) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "note"]), {"text": "Called them."}
    )
    admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "hand_off"]), {"text": "Agency X"}
    )
    case.refresh_from_db()
    assert case.state == CaseState.HANDED_OFF
    change = case.events.get(kind=CaseEventKind.STATE_CHANGED)
    assert (change.actor_user, change.reason, change.from_state, change.to_state) == (
        admin_user,
        "Agency X",
        "open",
        "handed_off",
    )
    assert case.events.filter(kind=CaseEventKind.NOTE, reason="Called them.").exists()


def test_bulk_pause_goes_through_the_service(admin_client) -> None:  # type: ignore[no-untyped-def]
    cases = [failed_invoice()[0] for _ in range(2)]
    admin_client.post(
        reverse("admin:dunning_dunningcase_changelist"),
        {"action": "pause_selected", "_selected_action": [c.pk for c in cases]},
    )
    for case in cases:
        case.refresh_from_db()
        assert case.state == CaseState.PAUSED
        assert case.events.filter(kind=CaseEventKind.STATE_CHANGED, to_state="paused").count() == 1


def test_resuming_shifts_the_remaining_schedule(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice(failed_at=timezone.now() - timedelta(hours=1))
    before = case.next_action_at
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "pause"]), {"text": "call"})
    case.refresh_from_db()
    case.paused_at -= timedelta(days=2)  # as if it had been paused for two days
    case.save(update_fields=["paused_at"])
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "resume"]))
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    assert case.schedule_shift_seconds >= 2 * 86400
    assert case.next_action_at - before >= timedelta(days=2)
