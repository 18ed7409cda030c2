"""Money safety on one database connection (both databases): what an unsettled attempt becomes, double
payments, retry budgets, the circuit breaker, late ticks and leases. The races themselves are in
test_money_safety_races.py (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from customers.models import InvoiceStatus
from customers.services import invoice_close
from dunning.gateways.simulated import SimulatedGateway
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    CaseState,
    CircuitState,
    DoublePayment,
    DoublePaymentReason,
    DoublePaymentStatus,
    DunningCase,
    GatewayCircuit,
    PaymentAttempt,
    SimulatedCharge,
    SimulatedGatewayRule,
)
from dunning.services.batch_load import claim_due_cases
from dunning.services.charging import charge_request_for
from dunning.services.double_payments import double_payment_dismiss, double_payment_refund
from dunning.services.reconcile import attempts_reconcile
from dunning.services.tick import run_tick
from notifications.models import Notification, StaffTask
from reporting.selectors.operations import operations_metrics
from tests.factories import TEST_ACTOR, failed_invoice

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]
OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # Monday 14:00 in Paris
SUCCEEDS = "pm_sim_4242424242424242"
DECLINES = "pm_sim_4000000000009995"


def retries(invoice_id: int) -> list[PaymentAttempt]:
    return list(PaymentAttempt.objects.filter(invoice_id=invoice_id).exclude(source=AttemptSource.INITIAL))


def unknown_attempt_whose_money_moved() -> tuple[DunningCase, PaymentAttempt]:
    """A tick retry that timed out after the processor charged the card."""
    case, invoice, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    rule = SimulatedGatewayRule.objects.create(
        customer_external_id=invoice.customer.external_id, fault="timeout_after_charge"
    )
    run_tick(now=OPENED + timedelta(days=1))
    rule.delete()
    (attempt,) = retries(invoice.pk)
    assert attempt.status == AttemptStatus.UNKNOWN
    assert SimulatedCharge.objects.filter(idempotency_key=attempt.idempotency_key, succeeded=True).exists()
    return case, attempt


def test_a_charge_that_moved_money_after_the_invoice_was_paid_elsewhere_is_flagged_once() -> None:
    case, attempt = unknown_attempt_whose_money_moved()
    # Meanwhile the billing system says the invoice was paid by wire, and the tick closes the case.
    invoice_close(invoice=attempt.invoice, status=InvoiceStatus.PAID, actor=TEST_ACTOR, reason="paid by wire")
    gateway = SimulatedGateway(truth_failures=1.0)  # the truth cannot be asked yet
    run_tick(now=OPENED + timedelta(days=1, minutes=5), gateway=gateway)
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert not DoublePayment.objects.exists()

    # Once the gateway answers, the money is found: a real double payment, flagged, saved and visible.
    for minutes in (10, 20, 30):  # and reporting it again changes nothing
        run_tick(now=OPENED + timedelta(days=1, minutes=minutes))
    attempt.refresh_from_db()
    case.refresh_from_db()
    assert attempt.status == AttemptStatus.DUPLICATE
    flag = DoublePayment.objects.get()
    assert (flag.attempt_id, flag.reason, flag.status) == (
        attempt.pk,
        DoublePaymentReason.ALREADY_PAID,
        DoublePaymentStatus.OPEN,
    )
    assert flag.amount_minor == attempt.amount_minor
    assert case.needs_staff_review
    assert case.events.filter(kind=CaseEventKind.DOUBLE_PAYMENT).count() == 1
    assert StaffTask.objects.filter(title__startswith="Double payment").count() == 1
    figures = {metric.name: metric.samples[0][1] for metric in operations_metrics()}
    assert figures["dunning_double_payments_open"] == 1


def test_staff_refund_a_double_payment_once_through_the_gateway() -> None:
    case, attempt = unknown_attempt_whose_money_moved()
    invoice_close(invoice=attempt.invoice, status=InvoiceStatus.PAID, actor=TEST_ACTOR, reason="paid by wire")
    run_tick(now=OPENED + timedelta(days=1, minutes=5))
    flag = DoublePayment.objects.get()
    refunded = double_payment_refund(flag=flag, actor=TEST_ACTOR)
    assert refunded.status == DoublePaymentStatus.REFUNDED
    charge = SimulatedCharge.objects.get(idempotency_key=attempt.idempotency_key)
    assert (charge.refunded_minor, charge.refund_reference) == (
        attempt.amount_minor,
        refunded.refund_reference,
    )
    with pytest.raises(ValidationError, match="already refunded"):
        double_payment_refund(flag=refunded, actor=TEST_ACTOR)
    with pytest.raises(ValidationError, match="already refunded"):
        double_payment_dismiss(flag=refunded, actor=TEST_ACTOR, reason="no")
    reasons = list(case.events.filter(kind=CaseEventKind.DOUBLE_PAYMENT).values_list("reason", flat=True))
    assert reasons[-1].startswith("double payment refunded: €49.00")


def test_an_attempt_settled_by_the_gateways_answer_has_no_double_payment_flag() -> None:
    """The usual recovery of an unknown attempt is no false alarm."""
    case, attempt = unknown_attempt_whose_money_moved()
    run_tick(now=OPENED + timedelta(days=1, minutes=5))
    attempt.refresh_from_db()
    case.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert case.state == CaseState.RECOVERED
    assert not case.needs_staff_review
    assert not DoublePayment.objects.exists()
    assert not case.events.filter(kind=CaseEventKind.NOTE, reason__icontains="double").exists()


def test_each_unsettled_attempt_is_reconciled_once_even_when_asked_twice() -> None:
    case, attempt = unknown_attempt_whose_money_moved()
    first = attempts_reconcile(gateway=SimulatedGateway(), actor=TEST_ACTOR, now=OPENED + timedelta(days=1))
    second = attempts_reconcile(gateway=SimulatedGateway(), actor=TEST_ACTOR, now=OPENED + timedelta(days=1))
    assert first["reconciled"] == 1
    assert not second
    assert case.events.filter(kind=CaseEventKind.ATTEMPT_RECONCILED).count() == 1
    assert case.events.filter(kind=CaseEventKind.ATTEMPT_SUCCEEDED).count() == 1


def test_gateway_errors_never_use_up_the_retry_budget_and_the_emails_go_on() -> None:
    """A week of 5xx errors: nothing reached the processor, so nothing counts against the cap of 4, and the
    schedule's emails still go out. When the gateway is back, the same attempt is sent again and pays."""
    case, invoice, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
    rule = SimulatedGatewayRule.objects.create(
        customer_external_id=invoice.customer.external_id, fault="server_error"
    )
    moment = OPENED
    while moment < OPENED + timedelta(days=9):
        run_tick(now=moment)
        moment += timedelta(hours=6)
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    assert case.retry_count == 0
    assert [a.status for a in retries(invoice.pk)] == [AttemptStatus.UNKNOWN]  # one attempt, never settled
    templates = set(Notification.objects.filter(case_ref=case.pk).values_list("template_key", flat=True))
    assert {"failure_1", "failure_2", "failure_3"} <= templates
    assert not SimulatedCharge.objects.exists()
    rule.delete()
    run_tick(now=moment)
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert case.retry_count == 1
    assert SimulatedCharge.objects.filter(succeeded=True).count() == 1


def test_a_refusal_before_sending_is_recorded_but_not_counted() -> None:
    case, invoice, method = failed_invoice(card=DECLINES, failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    method.gateway_payment_method_id = ""  # the gateway refuses: nothing to charge
    method.save()
    run_tick(now=OPENED + timedelta(days=1))
    (attempt,) = retries(invoice.pk)
    case.refresh_from_db()
    assert (attempt.status, attempt.processed, attempt.decline_processor) == (
        AttemptStatus.FAILED,
        False,
        "internal",
    )
    assert case.retry_count == 0
    assert case.decline_code == "insufficient_funds"  # what the bank said last still stands
    assert case.events.filter(kind=CaseEventKind.ATTEMPT_NOT_PROCESSED).count() == 1
    assert case.next_step_index == 3  # moved on, not retried "soon" forever


@override_settings(DUNNING_CIRCUIT_MIN_FAILURES=5, DUNNING_CIRCUIT_COOLDOWN_SECONDS=600)
def test_an_outage_opens_the_circuit_breaker_pauses_charging_and_tells_staff() -> None:
    cases = [failed_invoice(card=SUCCEEDS, failed_at=OPENED) for _ in range(8)]
    run_tick(now=OPENED + timedelta(hours=1))
    rules = [
        SimulatedGatewayRule.objects.create(
            customer_external_id=invoice.customer.external_id, fault="server_error"
        )
        for _, invoice, _ in cases
    ]
    run_tick(now=OPENED + timedelta(days=1))
    circuit = GatewayCircuit.objects.get(gateway="simulated")
    assert circuit.state == CircuitState.OPEN
    assert (circuit.window_calls, circuit.window_failures) == (8, 8)
    task = StaffTask.objects.get(title__startswith="Payment gateway simulated is failing")
    assert "paused, not used up" in task.details

    # The gateway is back, but the breaker holds until its cool-down ends: nothing is sent.
    for rule in rules:
        rule.delete()
    summary = run_tick(now=OPENED + timedelta(days=1, minutes=5))
    assert summary.counts["reconcile.paused_gateway_outage"] == 8
    assert not SimulatedCharge.objects.exists()
    assert all(c.retry_count == 0 for c in DunningCase.objects.all())

    # After the cool-down one probe batch goes out, succeeds, and closes the breaker.
    with override_settings(DUNNING_RECONCILE_LIMIT=3):
        run_tick(now=OPENED + timedelta(days=1, minutes=20))
    circuit.refresh_from_db()
    assert circuit.state == CircuitState.CLOSED
    run_tick(now=OPENED + timedelta(days=1, minutes=25))
    assert DunningCase.objects.filter(state=CaseState.RECOVERED).count() == 8
    assert SimulatedCharge.objects.filter(succeeded=True).count() == 8


def test_a_late_tick_sends_the_message_that_fits_now_and_records_the_others_as_skipped() -> None:
    case, _, _ = failed_invoice(card=DECLINES, failed_at=OPENED, decline_code="expired_card")
    run_tick(now=OPENED + timedelta(days=15))  # the tick was down for two weeks
    sent = list(Notification.objects.filter(case_ref=case.pk).values_list("template_key", flat=True))
    assert sent == ["final_notice"]
    skipped = case.events.filter(kind=CaseEventKind.STEP_SKIPPED, reason__startswith="late:")
    assert set(skipped.values_list("step_index", flat=True)) == {0, 1, 3, 5}


def test_the_suspension_email_of_a_case_that_exhausts_in_the_same_tick_is_not_withdrawn() -> None:
    case, _, _ = failed_invoice(card=DECLINES, failed_at=OPENED, decline_code="expired_card")
    run_tick(now=OPENED + timedelta(hours=1))
    run_tick(now=OPENED + timedelta(days=15))
    run_tick(now=OPENED + timedelta(days=30))  # suspend, the suspended email, escalate: then exhausted
    case.refresh_from_db()
    assert case.state == CaseState.EXHAUSTED
    suspended = Notification.objects.get(case_ref=case.pk, template_key="suspended")
    assert suspended.status == "queued", suspended.status_reason


def test_a_claim_whose_lease_ends_exactly_now_has_ended() -> None:
    case, _, _ = failed_invoice(card=DECLINES, failed_at=OPENED)
    moment = OPENED + timedelta(hours=1)
    DunningCase.objects.filter(pk=case.pk).update(claimed_until=moment, claim_token="dead")
    assert claim_due_cases(now=moment, limit=10, lease=timedelta(minutes=10)) is not None


def test_the_timeline_shows_a_charge_while_it_is_in_flight() -> None:
    case, invoice, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    SimulatedGatewayRule.objects.create(customer_external_id=invoice.customer.external_id, fault="timeout")
    run_tick(now=OPENED + timedelta(days=1))
    (attempt,) = retries(invoice.pk)
    started = case.events.get(kind=CaseEventKind.ATTEMPT_STARTED)
    assert started.details["attempt_id"] == attempt.pk
    assert started.step_index == 2


def test_a_stale_pending_attempt_is_never_settled_by_its_age_alone() -> None:
    """An owner whose lease ended may still send: "no record at the gateway" is not an answer. The attempt
    is sent again with its own key; the processor keeps one charge whichever request arrives first."""
    case, invoice, method = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
    attempt = PaymentAttempt.objects.create(
        invoice=invoice,
        case=case,
        payment_method=method,
        number=2,
        source=AttemptSource.RETRY,
        amount_minor=invoice.amount_due_minor,
        currency=invoice.currency,
        gateway="simulated",
        created_at=OPENED,
        step_index=2,
        claim_token="dead-owner",
        claimed_until=OPENED + timedelta(minutes=10),
    )
    run_tick(now=OPENED + timedelta(minutes=5))  # the lease holds: nobody touches it
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PENDING
    run_tick(now=OPENED + timedelta(minutes=11))
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    # The old owner's request arrives late, with the same key: the processor answers the same, once.
    late = SimulatedGateway().charge(
        charge_request_for(
            attempt_id=attempt.pk,
            amount_minor=attempt.amount_minor,
            currency=attempt.currency,
            gateway="simulated",
            invoice=invoice,
            method=method,
        )
    )
    assert late.succeeded
    assert SimulatedCharge.objects.filter(succeeded=True).count() == 1
    assert retries(invoice.pk) == [attempt]


def test_staff_refund_a_double_payment_from_its_admin_page(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    _, attempt = unknown_attempt_whose_money_moved()
    invoice_close(invoice=attempt.invoice, status=InvoiceStatus.PAID, actor=TEST_ACTOR, reason="paid by wire")
    run_tick(now=OPENED + timedelta(days=1, minutes=5))
    flag = DoublePayment.objects.get()
    staff_user.user_permissions.add(*Permission.objects.filter(codename="view_doublepayment"))
    client.force_login(staff_user)
    page = client.get(reverse("admin:dunning_doublepayment_change", args=[flag.pk]))
    assert page.status_code == 200
    refund_url = reverse("admin:dunning_doublepayment_resolve", args=[flag.pk, "refund"])
    assert refund_url not in page.content.decode()  # viewing is not refunding
    assert client.post(refund_url).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="refund_doublepayment"))
    page = client.get(reverse("admin:dunning_doublepayment_change", args=[flag.pk]))
    assert refund_url in page.content.decode()
    assert "Yes, refund €49.00" in client.get(refund_url).content.decode()
    assert client.post(refund_url).status_code == 302
    flag.refresh_from_db()
    assert flag.status == DoublePaymentStatus.REFUNDED
    assert flag.resolved_by == staff_user
    listing = client.get(reverse("admin:dunning_doublepayment_changelist") + "?todo=open")
    assert listing.status_code == 200
    assert "0 double payments" in listing.content.decode()
