"""Staff actions on cases, as the admin offers them. Each is audited on the case timeline.

Retry now, mark paid (in full or in part), pause (optionally until a date), resume, cancel, hand off,
notes, and clearing a staff-review flag. ``case_retry_now_blocker`` says in words why a retry would be
refused, so the confirmation page warns before the click and the service refuses with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus
from customers.money import format_money
from customers.services import invoice_close, invoice_payment_record
from dunning import state as machine
from dunning.models import (
    IN_FLIGHT_STATUSES,
    AttemptSource,
    CaseEvent,
    CaseEventKind,
    CaseState,
    DeclineCategory,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
)
from dunning.services import effects
from dunning.services.cases import Recovery, Transition, case_save_one, cases_recover, cases_save
from dunning.services.charging import ChargeRefused, attempt_charge
from dunning.services.events import EventBuffer
from dunning.services.retry_owner import OWNED_BY_GATEWAY_REASON, gateway_owns_retries

# The card networks' window for the per-card attempt cap (the tick's planning uses the same).
NETWORK_WINDOW = timedelta(days=30)
# Who resumes a pause that had a resume date.
SCHEDULED_RESUME_ACTOR = Actor.system("scheduled resume")
# Keys of the details of a staff note recording a part payment, and of a pause with a resume date.
PART_PAYMENT_KEY = "part_payment_minor"
RESUME_AT_KEY = "resume_at"


class OfflinePaymentMethod(models.TextChoices):
    """How money paid outside the gateway arrived (recorded with "Mark paid")."""

    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    CHEQUE = "cheque", "Cheque"
    CASH = "cash", "Cash"
    CARD_OUTSIDE = "card_outside", "Card, taken outside this system"
    OTHER = "other", "Other"


def _locked(case: DunningCase) -> DunningCase:
    return (
        DunningCase.objects.select_for_update(no_key=True, of=("self",))
        .select_related("invoice", "customer")
        .get(pk=case.pk)
    )


def _transition(
    case: DunningCase,
    event: str,
    *,
    actor: Actor,
    reason: str,
    details: Mapping[str, Any] | None = None,
) -> DunningCase:
    now = timezone.now()
    with transaction.atomic():
        case = _locked(case)
        if not machine.can(case.state, event):
            raise ValidationError(str(machine.TransitionRefused(case.state, event)))
        case_save_one(
            case=case,
            actor=actor,
            now=now,
            transition=Transition(event, reason=reason, details=details or {}),
        )
        if not case.is_active:
            events = EventBuffer()
            effects.cases_closed(cases=[case], actor=actor, now=now, events=events)
            events.flush()
    return case


def case_pause(
    *, case: DunningCase, actor: Actor, reason: str = "", resume_at: datetime | None = None
) -> DunningCase:
    """Stop the schedule; resuming shifts the remaining steps by the time spent paused.

    With ``resume_at`` the case resumes by itself at that moment (:func:`cases_resume_due`, run before
    every tick). The date is kept in the pause's timeline event, so the timeline says when it will resume.
    """
    details: dict[str, Any] = {}
    if resume_at is not None:
        if timezone.is_naive(resume_at):
            raise ValueError("resume_at must be an aware datetime")
        if resume_at <= timezone.now():
            raise ValidationError("The resume date must be in the future.")
        details[RESUME_AT_KEY] = resume_at.isoformat()
    reason = reason.strip() or "paused by staff"
    if resume_at is not None:
        reason += f" (until {timezone.localtime(resume_at):%Y-%m-%d %H:%M %Z})"
    return _transition(case, machine.Event.PAUSE, actor=actor, reason=reason, details=details)


def case_resume(*, case: DunningCase, actor: Actor, reason: str = "") -> DunningCase:
    return _transition(case, machine.Event.RESUME, actor=actor, reason=reason or "resumed by staff")


def case_paused_until(*, case: DunningCase) -> datetime | None:
    """When a paused case resumes by itself, or None (not paused, or paused without a date)."""
    if case.state != CaseState.PAUSED or case.paused_at is None:
        return None
    event = (
        CaseEvent.objects.filter(
            case=case, kind=CaseEventKind.STATE_CHANGED, to_state=CaseState.PAUSED, occurred_at=case.paused_at
        )
        .order_by("-id")
        .values_list("details", flat=True)
        .first()
    )
    value = (event or {}).get(RESUME_AT_KEY)
    return datetime.fromisoformat(value) if value else None


def cases_resume_due(*, now: datetime | None = None, dry_run: bool = False) -> list[int]:
    """Resume every paused case whose pause had a resume date that has come; returns their ids.

    Only the current pause counts: its event is the one written when the case was paused (same moment as
    ``paused_at``). A case resumed by hand meanwhile, or paused again without a date, is left alone.
    Each resume is an ordinary audited transition by the "scheduled resume" system actor.
    """
    now = now or timezone.now()
    rows = (
        CaseEvent.objects.filter(
            case__state=CaseState.PAUSED,
            kind=CaseEventKind.STATE_CHANGED,
            to_state=CaseState.PAUSED,
            details__has_key=RESUME_AT_KEY,
        )
        .order_by("case_id", "id")
        .values_list("case_id", "occurred_at", "case__paused_at", "details")
    )
    due: dict[int, datetime] = {}
    for case_id, occurred_at, paused_at, details in rows:
        if occurred_at != paused_at:
            continue  # an earlier pause of this case
        resume_at = datetime.fromisoformat(details[RESUME_AT_KEY])
        if resume_at <= now:
            due[case_id] = resume_at
    if dry_run:
        return sorted(due)
    resumed = []
    for case_id, resume_at in sorted(due.items()):
        try:
            _transition(
                DunningCase(pk=case_id),
                machine.Event.RESUME,
                actor=SCHEDULED_RESUME_ACTOR,
                reason=f"resumed as planned ({timezone.localtime(resume_at):%Y-%m-%d %H:%M %Z})",
            )
        except ValidationError:
            continue  # resumed, recovered or closed meanwhile
        resumed.append(case_id)
    return resumed


def case_cancel(*, case: DunningCase, actor: Actor, reason: str) -> DunningCase:
    """Stop dunning this invoice for good (it stays open and unpaid)."""
    if not reason.strip():
        raise ValidationError("Say why dunning is cancelled.")
    return _transition(case, machine.Event.CANCEL, actor=actor, reason=reason)


def case_hand_off(*, case: DunningCase, actor: Actor, reason: str) -> DunningCase:
    """Hand the invoice to collections: automation stops, the timeline keeps the context."""
    if not reason.strip():
        raise ValidationError("Say why the case goes to collections.")
    return _transition(case, machine.Event.HAND_OFF, actor=actor, reason=reason)


def case_add_note(*, case: DunningCase, actor: Actor, text: str) -> None:
    if not text.strip():
        raise ValidationError("A note needs some text.")
    events = EventBuffer()
    events.add(case_id=case.pk, kind=CaseEventKind.NOTE, actor=actor, at=timezone.now(), reason=text.strip())
    events.flush()


def case_review_done(*, case: DunningCase, actor: Actor, note: str) -> DunningCase:
    """Clear the staff-review flag (fraud decline, possible double payment) with a note saying what was found."""
    if not note.strip():
        raise ValidationError("Say what the review found.")
    now = timezone.now()
    with transaction.atomic():
        case = _locked(case)
        if not case.needs_staff_review:
            raise ValidationError("This case is not flagged for review.")
        case.needs_staff_review = False
        events = EventBuffer()
        events.add(
            case_id=case.pk,
            kind=CaseEventKind.NOTE,
            actor=actor,
            at=now,
            reason=f"review done: {note.strip()}",
            details={"review_done": True},
        )
        if not cases_save(cases=[case], actor=actor, now=now, events=events):
            raise ValidationError("The case changed meanwhile; open it again.")
        events.flush()
    return case


@dataclass(frozen=True)
class OfflinePayment:
    """What "Mark paid" recorded: the amount, and what is left to pay (0 when the invoice is now paid)."""

    amount_minor: int
    remaining_minor: int
    currency: str

    @property
    def settled(self) -> bool:
        return self.remaining_minor == 0


def _paid_at(paid_on: date | None, now: datetime) -> datetime:
    if paid_on is None or paid_on == timezone.localdate(now):
        return now
    # A past day: noon in the admin's time zone, so the date reads the same wherever it is shown.
    return timezone.make_aware(datetime.combine(paid_on, time(12)))


def case_record_offline_payment(
    *,
    case: DunningCase,
    actor: Actor,
    reference: str,
    amount_minor: int | None = None,
    paid_on: date | None = None,
    method: str = "",
) -> OfflinePayment:
    """Money for the case's invoice arrived outside the gateway (a bank transfer, a cheque).

    The whole amount left (the default) pays the invoice and recovers the case. Less is a part payment:
    the invoice's amount paid goes up, the case stays as it is and dunning carries on for the rest (later
    retries charge only what is left). Amounts are integers in the invoice's minor units.
    """
    reference = reference.strip()
    if not reference:
        raise ValidationError("Give the payment's reference (bank transfer id, cheque number…).")
    if method and method not in OfflinePaymentMethod.values:
        raise ValidationError(f"Unknown payment method {method!r}.")
    now = timezone.now()
    if paid_on is not None and paid_on > timezone.localdate(now):
        raise ValidationError("The payment date is in the future.")
    paid_at = _paid_at(paid_on, now)
    with transaction.atomic():
        # One lock order everywhere: invoice, then case, then attempts.
        invoice = Invoice.objects.select_for_update(no_key=True, of=("self",)).get(pk=case.invoice_id)
        case = _locked(case)
        if invoice.status != InvoiceStatus.OPEN:
            raise ValidationError(f"Invoice {invoice.number} is already {invoice.status}.")
        if PaymentAttempt.objects.filter(invoice=invoice, status__in=IN_FLIGHT_STATUSES).exists():
            raise ValidationError(
                "A charge of this invoice is in flight; wait for its result before recording a payment."
            )
        remaining = invoice.amount_due_minor - invoice.amount_paid_minor
        amount = remaining if amount_minor is None else amount_minor
        if amount <= 0:
            raise ValidationError("The amount received must be more than zero.")
        if amount > remaining:
            raise ValidationError(
                f"{format_money(amount, invoice.currency)} is more than the "
                f"{format_money(remaining, invoice.currency)} left to pay on invoice {invoice.number}."
            )
        method_label = OfflinePaymentMethod(method).label.lower() if method else "offline"
        details = {
            "reference": reference,
            "method": method,
            "paid_on": timezone.localdate(paid_at).isoformat(),
            "amount_minor": amount,
            "currency": invoice.currency,
        }
        events = EventBuffer()
        if amount < remaining:
            if not invoice_payment_record(
                invoice=invoice,
                amount_minor=amount,
                actor=actor,
                paid_at=paid_at,
                reason="part payment received outside the gateway",
                details=details,
            ):
                raise ValidationError(f"Invoice {invoice.number} changed meanwhile; open the case again.")
            left = remaining - amount
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.NOTE,
                actor=actor,
                at=now,
                reason=(
                    f"part payment of {format_money(amount, invoice.currency)} received ({method_label}, "
                    f"{reference}, {details['paid_on']}); {format_money(left, invoice.currency)} left, "
                    "dunning continues for it"
                ),
                details={**details, PART_PAYMENT_KEY: amount, "remaining_minor": left},
            )
            events.flush()
            return OfflinePayment(amount, left, invoice.currency)
        if not invoice_close(
            invoice=invoice,
            status=InvoiceStatus.PAID,
            actor=actor,
            reason="paid offline",
            paid_at=paid_at,
            details=details,
        ):
            raise ValidationError(f"Invoice {invoice.number} is already {invoice.status}.")
        events.add(
            case_id=case.pk,
            kind=CaseEventKind.NOTE,
            actor=actor,
            at=now,
            reason=(
                f"marked paid: {format_money(amount, invoice.currency)} received ({method_label}, "
                f"{reference}, {details['paid_on']})"
            ),
            details=details,
        )
        if machine.can(case.state, machine.Event.RECOVER):
            # What came back while the case was open: this payment and the part payments before it.
            earlier = sum(
                details.get(PART_PAYMENT_KEY, 0)
                for details in CaseEvent.objects.filter(case=case, kind=CaseEventKind.NOTE)
                .filter(details__has_key=PART_PAYMENT_KEY)
                .values_list("details", flat=True)
            )
            cases_recover(
                recoveries=[
                    Recovery(case=case, channel=RecoveryChannel.STAFF, amount_minor=amount + earlier)
                ],
                actor=actor,
                now=now,
                events=events,
            )
        events.flush()
    return OfflinePayment(amount, 0, invoice.currency)


def case_mark_paid(
    *,
    case: DunningCase,
    actor: Actor,
    reference: str,
    amount_minor: int | None = None,
    paid_on: date | None = None,
    method: str = "",
) -> DunningCase:
    """Record an offline payment (bank transfer, cheque): by default the whole amount left, which pays the
    invoice and recovers the case; a smaller ``amount_minor`` is a part payment (see
    :func:`case_record_offline_payment`)."""
    case_record_offline_payment(
        case=case, actor=actor, reference=reference, amount_minor=amount_minor, paid_on=paid_on, method=method
    )
    return DunningCase.objects.select_related("invoice", "customer").get(pk=case.pk)


def case_retry_now_blocker(*, case: DunningCase, now: datetime | None = None) -> str:
    """Why a staff "Retry now" of this case would be refused, in words for staff; "" when it may charge.

    The same rules as scheduled retries: never on a hard-declined method, never off-session when the bank
    asked the customer to authenticate, within the policy's retry cap and the card network's cap, and
    never for invoices whose gateway owns the retries. The confirmation page shows the answer before the
    click, and :func:`case_retry_now` refuses with it.
    """
    now = now or timezone.now()
    invoice = case.invoice
    if invoice.status != InvoiceStatus.OPEN:
        return (
            f"Invoice {invoice.number} is {invoice.get_status_display().lower()}: there is nothing to charge."
        )
    if case.state == CaseState.CANCELLED:
        return "Dunning was cancelled for this case: it is not charged any more."
    if gateway_owns_retries(gateway=invoice.gateway, gateway_invoice_id=invoice.gateway_invoice_id):
        return f"{OWNED_BY_GATEWAY_REASON}: this application does not charge it."
    if PaymentAttempt.objects.filter(invoice=invoice, status__in=IN_FLIGHT_STATUSES).exists():
        return "A charge of this invoice is in flight: wait for its result before trying again."
    default = case.customer.payment_methods.filter(is_default=True).first()
    if default is None:
        return "There is no payment method on file: the customer has to add one in the payment portal."
    if case.decline_category == DeclineCategory.AUTHENTICATION_REQUIRED:
        return (
            "The bank asked the customer to authenticate this payment: it cannot be charged without them. "
            "They can pay in the payment portal."
        )
    blocked_method = case.hard_declined_payment_method_id
    if blocked_method == default.pk or (
        case.decline_category in (DeclineCategory.HARD, DeclineCategory.FRAUD) and blocked_method is None
    ):
        if case.decline_category == DeclineCategory.FRAUD:
            return (
                "The last decline on this payment method was flagged as possible fraud: it is never retried."
            )
        return (
            f"The last decline ({case.decline_code or 'hard'}) was hard on this payment method: it is never "
            "retried. The customer needs to give a new one."
        )
    version = case.policy_version
    if case.retry_count >= version.max_retries:
        return (
            f"The policy's retry cap is reached: {case.retry_count} of {version.max_retries} retries done. "
            "More charges on this card would hurt its standing with the card network."
        )
    recent = PaymentAttempt.objects.filter(
        payment_method=default, created_at__gte=now - NETWORK_WINDOW
    ).count()
    if recent >= version.network_retry_cap:
        return (
            f"The card network cap is reached: {recent} attempts on this card in 30 days "
            f"(the policy allows {version.network_retry_cap})."
        )
    return ""


def case_retry_now(*, case: DunningCase, actor: Actor) -> PaymentAttempt:
    """Charge the invoice at once on the default payment method (outside the policy's schedule).

    Refused (ValidationError, with :func:`case_retry_now_blocker`'s words) when a scheduled retry would be
    refused too; ``ChargeRefused`` when the invoice was paid or a charge started in the meantime.
    """
    case = DunningCase.objects.select_related("invoice", "customer", "policy_version").get(pk=case.pk)
    blocker = case_retry_now_blocker(case=case)
    if blocker:
        raise ValidationError(blocker)
    return attempt_charge(invoice=case.invoice, source=AttemptSource.STAFF, actor=actor)


def customer_payment_method_updated(
    *, customer_id: int, actor: Actor, channel: str = RecoveryChannel.CARD_UPDATED, charge: bool = True
) -> list[PaymentAttempt]:
    """A customer's payment method changed (card updater, the customer, staff): unblock and retry once.

    Cases blocked by a hard decline or an authentication request on the old method resume, and (unless
    ``charge`` is False: the caller already charged) every open invoice in dunning is charged once, at
    once, on the new default method (except invoices whose gateway owns their retries:
    ``STRIPE_RETRY_OWNER=stripe``).
    """
    now = timezone.now()
    with transaction.atomic():
        cases = list(
            DunningCase.objects.select_for_update(no_key=True, of=("self",))
            .select_related("invoice", "customer")
            .filter(customer_id=customer_id, state__in=[machine.State.OPEN, machine.State.PAUSED])
            .order_by("id")
        )
        events = EventBuffer()
        for case in cases:
            case.hard_declined_payment_method = None
            if case.decline_category in (
                DeclineCategory.HARD,
                DeclineCategory.FRAUD,
                DeclineCategory.AUTHENTICATION_REQUIRED,
            ):
                case.decline_category = ""
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.PAYMENT_METHOD_CHANGED,
                actor=actor,
                at=now,
                reason="new payment method: retrying at once",
            )
        cases_save(cases=cases, actor=actor, now=now, events=events)
        events.flush()
    attempts = []
    for case in cases if charge else []:
        if case.state != machine.State.OPEN:
            continue
        invoice = case.invoice
        if gateway_owns_retries(gateway=invoice.gateway, gateway_invoice_id=invoice.gateway_invoice_id):
            continue  # Stripe retries it with the new default itself; we only unblocked the case
        try:
            attempts.append(
                attempt_charge(
                    invoice=case.invoice, source=AttemptSource.CARD_UPDATED, actor=actor, channel=channel
                )
            )
        except ChargeRefused:
            continue  # paid meanwhile, or a charge already in flight: nothing to do
    return attempts
