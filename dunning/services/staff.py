"""Staff actions on cases, as the admin offers them. Each is audited on the case timeline."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from customers.actors import Actor
from customers.models import InvoiceStatus
from customers.services import invoice_close
from dunning import state as machine
from dunning.models import (
    AttemptSource,
    CaseEventKind,
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


def _locked(case: DunningCase) -> DunningCase:
    return (
        DunningCase.objects.select_for_update(no_key=True, of=("self",))
        .select_related("invoice", "customer")
        .get(pk=case.pk)
    )


def _transition(case: DunningCase, event: str, *, actor: Actor, reason: str) -> DunningCase:
    now = timezone.now()
    with transaction.atomic():
        case = _locked(case)
        if not machine.can(case.state, event):
            raise ValidationError(str(machine.TransitionRefused(case.state, event)))
        case_save_one(case=case, actor=actor, now=now, transition=Transition(event, reason=reason))
        if not case.is_active:
            events = EventBuffer()
            effects.cases_closed(cases=[case], actor=actor, now=now, events=events)
            events.flush()
    return case


def case_pause(*, case: DunningCase, actor: Actor, reason: str = "") -> DunningCase:
    """Stop the schedule; resuming shifts the remaining steps by the time spent paused."""
    return _transition(case, machine.Event.PAUSE, actor=actor, reason=reason or "paused by staff")


def case_resume(*, case: DunningCase, actor: Actor, reason: str = "") -> DunningCase:
    return _transition(case, machine.Event.RESUME, actor=actor, reason=reason or "resumed by staff")


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


def case_mark_paid(*, case: DunningCase, actor: Actor, reference: str) -> DunningCase:
    """Record an offline payment (bank transfer, cheque): the invoice is paid and the case recovered."""
    if not reference.strip():
        raise ValidationError("Give the payment's reference (bank transfer id, cheque number…).")
    now = timezone.now()
    with transaction.atomic():
        case = _locked(case)
        if PaymentAttempt.objects.filter(invoice=case.invoice, status__in=["pending", "unknown"]).exists():
            raise ValidationError(
                "A charge of this invoice is in flight; wait for its result before marking it paid."
            )
        if not invoice_close(
            invoice=case.invoice,
            status=InvoiceStatus.PAID,
            actor=actor,
            reason="paid offline",
            paid_at=now,
            details={"reference": reference.strip()},
        ):
            raise ValidationError(f"Invoice {case.invoice.number} is already {case.invoice.status}.")
        if not machine.can(case.state, machine.Event.RECOVER):
            return case
        events = EventBuffer()
        cases_recover(
            recoveries=[
                Recovery(
                    case=case, channel=RecoveryChannel.STAFF, amount_minor=case.invoice.amount_paid_minor
                )
            ],
            actor=actor,
            now=now,
            events=events,
        )
        events.add(
            case_id=case.pk,
            kind=CaseEventKind.NOTE,
            actor=actor,
            at=now,
            reason=f"marked paid offline: {reference.strip()}",
        )
        events.flush()
    return case


def case_retry_now(*, case: DunningCase, actor: Actor) -> PaymentAttempt:
    """Charge the invoice at once on the default payment method (outside the policy's schedule).

    The same rules as scheduled retries hold: never on a hard-declined method, never off-session when the
    bank asked the customer to authenticate.
    """
    if gateway_owns_retries(gateway=case.invoice.gateway, gateway_invoice_id=case.invoice.gateway_invoice_id):
        raise ValidationError(f"{OWNED_BY_GATEWAY_REASON}: this application does not charge it.")
    if case.decline_category == DeclineCategory.AUTHENTICATION_REQUIRED:
        raise ValidationError(
            "The bank asked the customer to authenticate this payment: send them the portal link instead."
        )
    if case.hard_declined_payment_method_id is not None:
        default = case.customer.payment_methods.filter(is_default=True).first()
        if default is None or default.pk == case.hard_declined_payment_method_id:
            raise ValidationError(
                "The last decline was hard on this payment method: it is never retried. Ask for a new one."
            )
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
