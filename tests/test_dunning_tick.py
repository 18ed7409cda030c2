"""The tick, end to end on the database, with the simulated gateway and time travel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import EntitlementState, InvoiceStatus
from customers.services import invoice_close, payment_method_set_default
from dunning.gateways.simulated import SimulatedGateway, _MemoryLedger
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEvent,
    CaseEventKind,
    CaseState,
    DunningPolicy,
    PaymentAttempt,
    SimulatedCharge,
    SimulatedGatewayRule,
)
from dunning.services.policies import policy_publish
from dunning.services.staff import customer_payment_method_updated
from dunning.services.tick import run_tick
from tests.factories import TEST_ACTOR, PaymentMethodFactory, failed_invoice, make_policy

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]
PARIS = ZoneInfo("Europe/Paris")
OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # Monday 14:00 in Paris


def tick_hourly(start: datetime, days: int) -> None:
    moment = start
    while moment <= start + timedelta(days=days):
        run_tick(now=moment)
        moment += timedelta(hours=1)


def retries(invoice_id: int) -> list[PaymentAttempt]:
    return list(PaymentAttempt.objects.filter(invoice_id=invoice_id).exclude(source=AttemptSource.INITIAL))


def test_time_travel_through_the_whole_default_policy() -> None:
    case, invoice, method = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    tick_hourly(OPENED, days=30)
    case.refresh_from_db()
    assert case.state == CaseState.EXHAUSTED
    attempts = retries(invoice.pk)
    assert [a.status for a in attempts] == [AttemptStatus.FAILED] * 3
    # Retries are timed to the customer's morning: 09:00 in Paris on days 1, 4 and 8.
    assert [
        (a.created_at.astimezone(PARIS).date().day, a.created_at.astimezone(PARIS).hour) for a in attempts
    ] == [
        (5, 9),
        (8, 9),
        (12, 9),
    ]
    done = list(case.events.filter(kind=CaseEventKind.STEP_DONE).values_list("step_index", "reason"))
    assert [reason for _, reason in done] == [
        "email",
        "banner",
        "email",
        "email",
        "email",
        "banner",
        "degrade",
        "webhook",
        "suspend",
        "email",
        "escalate",
    ]
    invoice.customer.refresh_from_db()
    assert invoice.customer.entitlement_state == EntitlementState.SUSPENDED
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN
    assert case.events.filter(kind=CaseEventKind.STATE_CHANGED, to_state="exhausted").count() == 1


def test_the_command_runs_one_tick_and_prints_a_summary() -> None:
    failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    out = StringIO()
    call_command("run_dunning", "--now", "2026-05-05T08:00:00Z", stdout=out)
    text = out.getvalue()
    assert "Tick at 2026-05-05T08:00:00+00:00" in text
    assert "ran: 1 due case(s) in 1 batch(es)" in text
    assert "retry.succeeded: 1" in text
    assert "recovered: 1" in text
    assert "email: 1" in text


def test_a_successful_retry_recovers_the_case_and_nothing_runs_after() -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))  # day-0 email and banner
    run_tick(now=OPENED + timedelta(days=1))  # the day-1 retry succeeds
    case.refresh_from_db()
    invoice.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert case.recovery_channel == "silent_retry"
    assert case.recovered_amount_minor == invoice.amount_due_minor
    assert invoice.status == InvoiceStatus.PAID
    invoice.customer.refresh_from_db()
    assert invoice.customer.entitlement_state == EntitlementState.ACTIVE
    events_after = case.events.count()
    tick_hourly(OPENED + timedelta(days=1, hours=1), days=30)
    assert case.events.count() == events_after
    assert len(retries(invoice.pk)) == 1


def test_paid_between_two_ticks_means_nothing_else_happens() -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=TEST_ACTOR, reason="bank transfer")
    tick_hourly(OPENED + timedelta(hours=2), days=30)
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert case.recovery_channel == "paid_outside"
    assert retries(invoice.pk) == []
    assert not case.events.filter(
        kind=CaseEventKind.STEP_DONE, occurred_at__gt=OPENED + timedelta(hours=2)
    ).exists()


def test_a_hard_decline_is_never_retried_on_the_same_method() -> None:
    case, invoice, method = failed_invoice(
        card="pm_sim_4000000000000069", decline_code="expired_card", failed_at=OPENED
    )
    tick_hourly(OPENED, days=10)
    assert retries(invoice.pk) == []
    skipped = case.events.filter(kind=CaseEventKind.STEP_SKIPPED).values_list("reason", flat=True)
    assert len(skipped) == 3
    # A new card lifts the block and is charged once, at once.
    new_card = PaymentMethodFactory(
        customer=invoice.customer, gateway_payment_method_id="pm_sim_4242", is_default=False
    )
    payment_method_set_default(payment_method=new_card, actor=TEST_ACTOR)
    attempts = customer_payment_method_updated(customer_id=invoice.customer_id, actor=TEST_ACTOR)
    assert [(a.source, a.status, a.payment_method_id) for a in attempts] == [
        (AttemptSource.CARD_UPDATED, AttemptStatus.SUCCEEDED, new_card.pk)
    ]
    case.refresh_from_db()
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, "card_updated")
    assert (
        PaymentAttempt.objects.filter(payment_method=method).exclude(source=AttemptSource.INITIAL).count()
        == 0
    )


def test_a_new_card_lets_scheduled_retries_resume_after_a_hard_decline() -> None:
    case, invoice, _ = failed_invoice(
        card="pm_sim_4000000000000069", decline_code="expired_card", failed_at=OPENED
    )
    run_tick(now=OPENED + timedelta(days=2))
    assert retries(invoice.pk) == []
    new_card = PaymentMethodFactory(
        customer=invoice.customer, gateway_payment_method_id="pm_sim_4000000000009995", is_default=False
    )
    payment_method_set_default(payment_method=new_card, actor=TEST_ACTOR)
    customer_payment_method_updated(customer_id=invoice.customer_id, actor=TEST_ACTOR)  # declines: soft
    run_tick(now=OPENED + timedelta(days=4, hours=8))  # the day-4 retry runs on the new card
    assert [a.source for a in retries(invoice.pk)] == [AttemptSource.CARD_UPDATED, AttemptSource.RETRY]
    assert {a.payment_method_id for a in retries(invoice.pk)} == {new_card.pk}


def test_authentication_required_stops_off_session_retries() -> None:
    case, invoice, _ = failed_invoice(
        card="pm_sim_4000002500003155", decline_code="authentication_required", failed_at=OPENED
    )
    tick_hourly(OPENED, days=10)
    assert retries(invoice.pk) == []
    assert case.events.filter(kind=CaseEventKind.STEP_DONE, reason="email").count() == 3


def test_retry_cap_is_respected_and_communication_continues() -> None:
    make_policy(
        name="Two retries",
        priority=1,
        max_retries=2,
        steps=[
            (1, 9, "retry", "", []),
            (2, 9, "retry", "", []),
            (3, 9, "retry", "", []),
            (4, 9, "retry", "", []),
            (5, 9, "email", "final_notice", []),
        ],
    )
    case, invoice, _ = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    tick_hourly(OPENED, days=6)
    assert len(retries(invoice.pk)) == 2
    case.refresh_from_db()
    assert case.retry_count == 2
    assert case.state == CaseState.EXHAUSTED
    reasons = list(case.events.filter(kind=CaseEventKind.STEP_SKIPPED).values_list("reason", flat=True))
    assert reasons == ["retry cap reached (2)", "retry cap reached (2)"]
    assert case.events.filter(kind=CaseEventKind.STEP_DONE, reason="email").count() == 1


def test_the_card_network_cap_counts_attempts_on_the_card_across_invoices() -> None:
    make_policy(name="Tight network cap", priority=1, network_retry_cap=2, steps=[(1, 9, "retry", "", [])])
    first, invoice, method = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    # The same card failed on two other invoices in the last 30 days.
    for _ in range(2):
        PaymentAttempt.objects.create(
            invoice=invoice.__class__.objects.create(
                customer=invoice.customer,
                number=f"OTHER-{_}",
                amount_due_minor=100,
                currency="EUR",
                due_at=OPENED,
            ),
            payment_method=method,
            number=1,
            source=AttemptSource.RETRY,
            status=AttemptStatus.FAILED,
            amount_minor=100,
            currency="EUR",
            gateway="simulated",
            created_at=OPENED - timedelta(days=3),
        )
    run_tick(now=OPENED + timedelta(days=2))
    assert retries(invoice.pk) == []
    assert "card network cap reached" in first.events.get(kind=CaseEventKind.STEP_SKIPPED).reason


def test_a_case_keeps_the_policy_version_it_started_with() -> None:
    old_case, old_invoice, _ = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    default = DunningPolicy.objects.get(name="Default")
    default.steps.filter(action="retry").delete()
    version_two = policy_publish(policy=default, actor=TEST_ACTOR)
    new_case, new_invoice, _ = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    assert (old_case.policy_version.number + 1, new_case.policy_version) == (version_two.number, version_two)
    tick_hourly(OPENED, days=5)
    assert len(retries(old_invoice.pk)) == 2
    assert retries(new_invoice.pk) == []


def test_running_the_same_tick_twice_changes_nothing_the_second_time() -> None:
    failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    moment = OPENED + timedelta(days=1)
    first = run_tick(now=moment)
    counts = (CaseEvent.objects.count(), PaymentAttempt.objects.count(), SimulatedCharge.objects.count())
    second = run_tick(now=moment)
    assert first.cases == 2
    assert second.cases == 0
    assert (
        CaseEvent.objects.count(),
        PaymentAttempt.objects.count(),
        SimulatedCharge.objects.count(),
    ) == counts


def test_a_dry_run_changes_nothing() -> None:
    failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    before = (CaseEvent.objects.count(), PaymentAttempt.objects.count())
    out = StringIO()
    call_command("run_dunning", "--dry-run", "--now", "2026-05-05T12:00:00Z", stdout=out)
    assert "[dry run] would run: 1 due case(s)" in out.getvalue()
    assert "retry: 1" in out.getvalue()
    assert (CaseEvent.objects.count(), PaymentAttempt.objects.count()) == before


def test_limit_caps_the_cases_processed() -> None:
    for _ in range(3):
        failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    assert run_tick(now=OPENED + timedelta(hours=1), limit=2).cases == 2
    assert run_tick(now=OPENED + timedelta(hours=1)).cases == 1


def test_a_processing_error_is_retried_soon() -> None:
    case, invoice, _ = failed_invoice(
        card="pm_sim_4000000000000119", decline_code="processing_error", failed_at=OPENED
    )
    day_one = datetime(2026, 5, 5, 7, 0, tzinfo=UTC)  # 09:00 Paris
    run_tick(now=day_one)
    case.refresh_from_db()
    assert case.next_action_at == day_one + timedelta(minutes=60)
    run_tick(now=day_one + timedelta(minutes=61))
    assert len(retries(invoice.pk)) == 2


def test_a_timeout_after_the_charge_is_reconciled_and_never_charged_twice() -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    SimulatedGatewayRule.objects.create(
        customer_external_id=invoice.customer.external_id, fault="timeout_after_charge"
    )
    run_tick(now=OPENED + timedelta(days=1))
    attempt = retries(invoice.pk)[0]
    assert attempt.status == AttemptStatus.UNKNOWN
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    SimulatedGatewayRule.objects.all().delete()
    run_tick(now=OPENED + timedelta(days=1, minutes=5))
    attempt.refresh_from_db()
    case.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert case.state == CaseState.RECOVERED
    assert (
        SimulatedCharge.objects.filter(customer_ref=invoice.customer.external_id, succeeded=True).count() == 1
    )
    assert case.events.filter(kind=CaseEventKind.ATTEMPT_RECONCILED).count() == 1


def test_a_timeout_before_the_charge_is_settled_by_sending_the_same_key_again() -> None:
    """The gateway never saw the request: "no record" is not an answer, so the same logical retry is sent
    again with the same idempotency key (the processor charges at most once), and its answer settles it."""
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    SimulatedGatewayRule.objects.create(customer_external_id=invoice.customer.external_id, fault="timeout")
    run_tick(now=OPENED + timedelta(days=1))
    first = retries(invoice.pk)[0]
    first.refresh_from_db()
    assert first.status == AttemptStatus.UNKNOWN
    SimulatedGatewayRule.objects.all().delete()
    run_tick(now=OPENED + timedelta(days=1, minutes=5))
    first.refresh_from_db()
    case.refresh_from_db()
    assert (first.status, first.processed) == (AttemptStatus.SUCCEEDED, True)
    assert case.state == CaseState.RECOVERED
    assert [a.pk for a in retries(invoice.pk)] == [first.pk]
    assert SimulatedCharge.objects.get().idempotency_key == first.idempotency_key
    # The retry was counted once, when the processor processed it; the timeout counted nothing.
    assert case.retry_count == 1


def test_a_crash_between_the_gateway_call_and_the_commit_is_reconciled_without_a_second_charge(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    moment = OPENED + timedelta(days=1)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash after the gateway answered")

    monkeypatch.setattr("dunning.services.tick_batch._record_batch", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_tick(now=moment)
    monkeypatch.undo()
    pending = retries(invoice.pk)
    assert [a.status for a in pending] == [AttemptStatus.PENDING]
    assert SimulatedCharge.objects.filter(succeeded=True).count() == 1
    # While the crashed tick's lease holds, nobody touches the case or charges again.
    run_tick(now=moment + timedelta(minutes=1))
    assert SimulatedCharge.objects.count() == 1
    # After the lease, the next tick asks the gateway for the truth first.
    run_tick(now=moment + timedelta(minutes=11))
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert [a.status for a in retries(invoice.pk)] == [AttemptStatus.SUCCEEDED]
    assert SimulatedCharge.objects.count() == 1


def test_the_tick_runs_a_constant_number_of_queries_for_n_and_2n_cases() -> None:
    _MemoryLedger.reset()
    gateway = SimulatedGateway(ledger="memory", rules=[])

    def queries_for(count: int, start: datetime) -> int:
        while run_tick(now=start - timedelta(hours=1), gateway=gateway).cases:
            pass  # earlier cases run to their end first, so only the new ones are due below
        for _ in range(count):
            failed_invoice(card="pm_sim_4000000000009995", failed_at=start)
            failed_invoice(card="pm_sim_4242424242424242", failed_at=start)
        run_tick(now=start + timedelta(hours=1), gateway=gateway)  # day-0 steps
        with CaptureQueriesContext(connection) as captured:
            summary = run_tick(now=start + timedelta(days=1), gateway=gateway)  # retries: half succeed
        assert summary.cases == 2 * count
        return len(captured.captured_queries)

    small = queries_for(3, OPENED)
    large = queries_for(6, OPENED + timedelta(days=40))
    assert small == large


def test_no_retry_starts_once_another_charge_of_the_invoice_succeeded() -> None:
    """A charge that succeeded by another route (portal, staff) after the tick read the invoice as open."""
    case, invoice, method = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    PaymentAttempt.objects.create(
        invoice=invoice,
        case=case,
        payment_method=method,
        number=2,
        source=AttemptSource.PORTAL,
        status=AttemptStatus.SUCCEEDED,
        amount_minor=invoice.amount_due_minor,
        currency=invoice.currency,
        gateway="simulated",
    )
    summary = run_tick(now=OPENED + timedelta(days=1))
    assert summary.counts["retry.deferred_in_flight"] == 1
    assert not SimulatedCharge.objects.exists()


def test_one_tick_worker_where_other_connections_could_not_help(settings) -> None:  # type: ignore[no-untyped-def]
    from django.db import transaction

    from dunning.services.tick import tick_workers

    settings.DUNNING_TICK_WORKERS = 3
    with transaction.atomic():
        # Inside a transaction another connection would not see its uncommitted rows.
        assert tick_workers() == 1
    if connection.vendor == "sqlite":
        assert tick_workers() == 1  # one writer at a time


def test_the_gateway_rate_limit_is_one_bucket_for_the_whole_process() -> None:
    from dunning.gateways.ratelimit import shared_bucket

    assert shared_bucket(40) is shared_bucket(40.0)
    assert shared_bucket(40) is not shared_bucket(20)


def test_the_collector_runs_less_often_during_a_tick_and_as_before_after_it() -> None:
    import gc

    from dunning.services.tick import TICK_GC_THRESHOLD

    seen: list[int] = []

    class Observing(SimulatedGateway):
        def charge(self, request):  # type: ignore[no-untyped-def]
            seen.append(gc.get_threshold()[0])
            return super().charge(request)

    before = gc.get_threshold()
    failed_invoice(failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    run_tick(now=OPENED + timedelta(days=1), gateway=Observing(ledger="memory", rules=[]))
    assert seen == [TICK_GC_THRESHOLD]
    assert gc.get_threshold() == before
