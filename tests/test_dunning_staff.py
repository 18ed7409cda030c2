"""Staff services on cases: part and full offline payments, pauses with a resume date, the retry-now
blocker, and clearing a review flag. Every change is audited."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from customers.actors import Actor
from customers.models import AuditEvent, InvoiceStatus
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEvent,
    CaseEventKind,
    CaseState,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
)
from dunning.services.staff import (
    case_mark_paid,
    case_pause,
    case_paused_until,
    case_record_offline_payment,
    case_resume,
    case_retry_now,
    case_retry_now_blocker,
    case_review_done,
    cases_resume_due,
)
from tests.factories import PaymentMethodFactory, failed_invoice

pytestmark = pytest.mark.django_db

STAFF = Actor.system("finance desk")
GOOD_CARD = "pm_sim_4242424242424242"


def _case(case: DunningCase) -> DunningCase:
    return DunningCase.objects.select_related("invoice", "customer", "policy_version").get(pk=case.pk)


# --- Mark paid: part and full payments, in integer minor units -----------------------------------------


def test_a_part_payment_lowers_what_is_left_and_dunning_carries_on() -> None:
    case, invoice, _ = failed_invoice(amount_minor=4900, card=GOOD_CARD)
    payment = case_record_offline_payment(
        case=case,
        actor=STAFF,
        reference="SEPA 2026-0412",
        amount_minor=1500,
        paid_on=timezone.localdate(),
        method="bank_transfer",
    )
    assert (payment.amount_minor, payment.remaining_minor, payment.settled) == (1500, 3400, False)
    invoice.refresh_from_db()
    case.refresh_from_db()
    assert (invoice.status, invoice.amount_paid_minor, invoice.amount_remaining_minor) == ("open", 1500, 3400)
    assert case.state == CaseState.OPEN and case.next_action_at is not None
    audit = AuditEvent.objects.get(action="invoice.payment_recorded", invoice=invoice)
    assert audit.details["amount_minor"] == 1500 and audit.details["reference"] == "SEPA 2026-0412"
    note = case.events.get(kind=CaseEventKind.NOTE)
    assert note.details["part_payment_minor"] == 1500 and note.details["remaining_minor"] == 3400
    assert "€34.00 left" in note.reason

    # The next charge asks only for what is left.
    attempt = case_retry_now(case=case, actor=STAFF)
    assert (attempt.amount_minor, attempt.status) == (3400, AttemptStatus.SUCCEEDED)


def test_part_payments_then_the_rest_pay_the_invoice_and_recover_all_of_it() -> None:
    case, invoice, _ = failed_invoice(amount_minor=4900)
    case_record_offline_payment(case=case, actor=STAFF, reference="cheque 1", amount_minor=1000)
    case_record_offline_payment(case=case, actor=STAFF, reference="cheque 2", amount_minor=2000)
    last = case_record_offline_payment(case=case, actor=STAFF, reference="cheque 3", method="cheque")
    assert (last.amount_minor, last.remaining_minor, last.settled) == (1900, 0, True)
    invoice.refresh_from_db()
    case.refresh_from_db()
    assert (invoice.status, invoice.amount_paid_minor) == (InvoiceStatus.PAID, 4900)
    assert (case.state, case.recovery_channel, case.recovered_amount_minor) == (
        CaseState.RECOVERED,
        RecoveryChannel.STAFF,
        4900,
    )
    assert AuditEvent.objects.filter(action="invoice.payment_recorded", invoice=invoice).count() == 2
    assert AuditEvent.objects.get(action="invoice.paid", invoice=invoice).details["method"] == "cheque"


def test_amounts_use_the_currency_minor_unit() -> None:
    case, invoice, _ = failed_invoice(amount_minor=5000, currency="JPY")  # ¥5,000
    case_record_offline_payment(case=case, actor=STAFF, reference="furikomi", amount_minor=1999)
    invoice.refresh_from_db()
    assert invoice.amount_remaining_minor == 3001
    note = case.events.get(kind=CaseEventKind.NOTE)
    assert "¥1,999" in note.reason and "¥3,001 left" in note.reason


@pytest.mark.parametrize(
    ("amount", "message"),
    [(4901, "more than the €49.00 left"), (0, "more than zero"), (-5, "more than zero")],
)
def test_more_than_is_left_or_nothing_is_refused(amount: int, message: str) -> None:
    case, invoice, _ = failed_invoice(amount_minor=4900)
    with pytest.raises(ValidationError, match=message):
        case_record_offline_payment(case=case, actor=STAFF, reference="x", amount_minor=amount)
    invoice.refresh_from_db()
    assert invoice.amount_paid_minor == 0 and invoice.status == InvoiceStatus.OPEN
    assert not AuditEvent.objects.filter(invoice=invoice, action__startswith="invoice.pa").exists()


def test_a_payment_date_in_the_future_or_an_unknown_method_is_refused() -> None:
    case, _, _ = failed_invoice()
    with pytest.raises(ValidationError, match="future"):
        case_mark_paid(
            case=case, actor=STAFF, reference="x", paid_on=timezone.localdate() + timedelta(days=1)
        )
    with pytest.raises(ValidationError, match="Unknown payment method"):
        case_mark_paid(case=case, actor=STAFF, reference="x", method="bitcoin")
    assert _case(case).state == CaseState.OPEN


def test_the_payment_date_is_the_invoice_paid_date() -> None:
    case, invoice, _ = failed_invoice()
    paid_on = timezone.localdate() - timedelta(days=3)
    returned = case_mark_paid(case=case, actor=STAFF, reference="wire 77", paid_on=paid_on)
    invoice.refresh_from_db()
    assert timezone.localdate(invoice.paid_at) == paid_on
    assert returned.state == CaseState.RECOVERED


def test_no_payment_is_recorded_while_a_charge_is_in_flight() -> None:
    case, invoice, method = failed_invoice()
    PaymentAttempt.objects.create(
        invoice=invoice,
        case=case,
        payment_method=method,
        number=2,
        source=AttemptSource.RETRY,
        amount_minor=4900,
        currency="EUR",
        gateway="simulated",
    )
    with pytest.raises(ValidationError, match="in flight"):
        case_record_offline_payment(case=case, actor=STAFF, reference="x", amount_minor=100)
    invoice.refresh_from_db()
    assert invoice.amount_paid_minor == 0


# --- Pause with a resume date ----------------------------------------------------------------------------


def test_a_pause_with_a_date_resumes_by_itself_once_and_shifts_the_schedule() -> None:
    case, _, _ = failed_invoice(failed_at=timezone.now() - timedelta(hours=1))
    before = _case(case).next_action_at
    resume_at = timezone.now() + timedelta(days=2)
    paused = case_pause(case=case, actor=STAFF, reason="customer on holiday", resume_at=resume_at)
    assert paused.state == CaseState.PAUSED
    assert case_paused_until(case=_case(case)) == resume_at
    event = case.events.get(kind=CaseEventKind.STATE_CHANGED, to_state="paused")
    assert event.reason.startswith("customer on holiday (until ")
    assert event.details == {"resume_at": resume_at.isoformat()}

    assert cases_resume_due(now=resume_at - timedelta(minutes=1)) == []
    assert cases_resume_due(now=resume_at + timedelta(minutes=1), dry_run=True) == [case.pk]
    assert _case(case).state == CaseState.PAUSED  # a dry run changes nothing
    assert cases_resume_due(now=resume_at + timedelta(minutes=1)) == [case.pk]
    assert cases_resume_due(now=resume_at + timedelta(days=1)) == []  # once
    resumed = _case(case)
    assert resumed.state == CaseState.OPEN and resumed.paused_at is None
    assert resumed.next_action_at >= before  # the remaining steps moved by the paused time
    resume_event = case.events.get(kind=CaseEventKind.STATE_CHANGED, to_state="open")
    assert (resume_event.actor_type, resume_event.actor_label) == ("system", "scheduled resume")
    assert resume_event.reason.startswith("resumed as planned")


def test_only_the_current_pause_resumes_by_itself() -> None:
    case, _, _ = failed_invoice()
    case_pause(case=case, actor=STAFF, reason="first", resume_at=timezone.now() + timedelta(days=1))
    case_resume(case=case, actor=STAFF)
    case_pause(case=case, actor=STAFF, reason="until further notice")  # no date this time
    assert case_paused_until(case=_case(case)) is None
    assert cases_resume_due(now=timezone.now() + timedelta(days=5)) == []
    assert _case(case).state == CaseState.PAUSED


def test_a_resume_date_in_the_past_is_refused() -> None:
    case, _, _ = failed_invoice()
    with pytest.raises(ValidationError, match="future"):
        case_pause(case=case, actor=STAFF, reason="x", resume_at=timezone.now() - timedelta(minutes=1))
    assert _case(case).state == CaseState.OPEN


def test_run_dunning_resumes_due_pauses_before_the_tick() -> None:
    case, _, _ = failed_invoice()
    resume_at = timezone.now() + timedelta(days=1)
    case_pause(case=case, actor=STAFF, reason="promised to pay", resume_at=resume_at)
    out = StringIO()
    later = (resume_at + timedelta(hours=1)).isoformat()
    call_command("run_dunning", "--dry-run", "--now", later, stdout=out)
    assert "would resume: 1 paused case(s)" in out.getvalue()
    assert _case(case).state == CaseState.PAUSED
    call_command("run_dunning", "--now", later, stdout=out)
    assert "resumed: 1 paused case(s)" in out.getvalue()
    assert _case(case).state == CaseState.OPEN


# --- Retry now: one blocker for the page and the service ------------------------------------------------


def _refused(case: DunningCase, match: str) -> None:
    blocker = case_retry_now_blocker(case=_case(case))
    assert match in blocker, blocker
    before = PaymentAttempt.objects.count()
    with pytest.raises(ValidationError) as refusal:
        case_retry_now(case=case, actor=STAFF)
    assert refusal.value.messages == [blocker]
    assert PaymentAttempt.objects.count() == before  # nothing was charged


def test_a_soft_decline_with_a_card_on_file_may_be_retried() -> None:
    case, _, _ = failed_invoice(card=GOOD_CARD)
    assert case_retry_now_blocker(case=_case(case)) == ""


def test_authentication_required_is_refused_before_any_charge() -> None:
    case, _, _ = failed_invoice(decline_code="authentication_required")
    _refused(case, "authenticate")


def test_a_hard_decline_on_the_card_on_file_is_refused_until_the_card_changes() -> None:
    case, _, _ = failed_invoice(decline_code="expired_card")
    _refused(case, "was hard on this payment method")
    PaymentMethodFactory(customer=case.customer, gateway_payment_method_id=GOOD_CARD, is_default=False)
    new = case.customer.payment_methods.get(gateway_payment_method_id=GOOD_CARD)
    case.customer.payment_methods.update(is_default=False)
    new.is_default = True
    new.save(update_fields=["is_default"])
    assert case_retry_now_blocker(case=_case(case)) == ""


def test_the_retry_cap_and_the_network_cap_are_refused() -> None:
    case, _, method = failed_invoice()
    DunningCase.objects.filter(pk=case.pk).update(retry_count=4)
    _refused(case, "retry cap is reached: 4 of 4")
    DunningCase.objects.filter(pk=case.pk).update(retry_count=0)
    for number in range(2, 16):
        PaymentAttempt.objects.create(
            invoice=case.invoice,
            case=case,
            payment_method=method,
            number=number,
            source=AttemptSource.RETRY,
            status=AttemptStatus.FAILED,
            amount_minor=4900,
            currency="EUR",
            gateway="simulated",
        )
    _refused(case, "card network cap is reached: 15 attempts")


def test_no_payment_method_a_paid_invoice_and_a_cancelled_case_are_refused() -> None:
    case, invoice, _ = failed_invoice()
    case.customer.payment_methods.all().delete()
    _refused(case, "no payment method on file")
    other, _, _ = failed_invoice()
    case_mark_paid(case=other, actor=STAFF, reference="wire")
    _refused(other, "is paid: there is nothing to charge")
    third, _, _ = failed_invoice()
    from dunning.services.staff import case_cancel

    case_cancel(case=third, actor=STAFF, reason="goodwill")
    _refused(third, "Dunning was cancelled")


def test_invoices_whose_gateway_owns_retries_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_RETRY_OWNER = "stripe"
    case, invoice, _ = failed_invoice()
    invoice.gateway, invoice.gateway_invoice_id = "stripe", "in_123"
    invoice.save(update_fields=["gateway", "gateway_invoice_id"])
    _refused(case, "STRIPE_RETRY_OWNER=stripe")


# --- Review flag -------------------------------------------------------------------------------------------


def test_clearing_a_review_flag_needs_a_note_and_is_audited() -> None:
    case, _, _ = failed_invoice(decline_code="fraudulent")
    assert _case(case).needs_staff_review
    with pytest.raises(ValidationError, match="Say what the review found"):
        case_review_done(case=case, actor=STAFF, note=" ")
    case_review_done(case=case, actor=STAFF, note="Bank confirmed: card stolen, customer informed.")
    assert not _case(case).needs_staff_review
    note = CaseEvent.objects.get(case=case, kind=CaseEventKind.NOTE)
    assert note.reason == "review done: Bank confirmed: card stolen, customer informed."
    assert note.actor_label == "finance desk"
    with pytest.raises(ValidationError, match="not flagged"):
        case_review_done(case=case, actor=STAFF, note="again")


def test_paid_on_defaults_to_today() -> None:
    case, invoice, _ = failed_invoice()
    case_mark_paid(case=case, actor=STAFF, reference="cash at the desk", method="cash")
    invoice.refresh_from_db()
    assert invoice.amount_paid_minor == invoice.amount_due_minor
    assert timezone.localdate(invoice.paid_at) == timezone.localdate()
