"""What Stripe says happened to an invoice: failed, needs authentication, paid, void, uncollectible.

Each service re-fetches the invoice from Stripe first (money is involved) and follows what Stripe says
now, not what the event said then: events arrive duplicated, out of order and days late. Final states are
final: closing an invoice is a conditional UPDATE, and cases only move through the state machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus
from customers.services import invoice_close
from dunning import state as machine
from dunning.gateways.stripe import StripeGateway
from dunning.gateways.stripe_amounts import from_stripe_amount
from dunning.gateways.stripe_objects import (
    AUTHENTICATION_REQUIRED,
    decline_code_of,
    expandable_id,
    timestamp,
)
from dunning.models import DunningCase, PaymentAttempt, RecoveryChannel
from dunning.services import effects
from dunning.services.cases import Recovery, Transition, cases_recover, cases_save, invoice_payment_failed
from dunning.services.events import EventBuffer
from dunning.services.stripe_sync.common import (
    STRIPE,
    Outcome,
    defer_while_charging,
    ignored,
    processed,
)
from dunning.services.stripe_sync.records import stripe_invoice_local

FINAL_AT_STRIPE = {"paid", "void", "uncollectible"}


def _failure(intent: Mapping[str, Any], *, authentication: bool) -> tuple[str, str, str, str]:
    """(decline code, reference, message, payment method id) of the invoice's last failed payment.

    The reference is the declined charge's id (one per attempt) when there is one, else the PaymentIntent's:
    Stripe reuses an invoice's PaymentIntent across attempts, so charge ids are what tell them apart.
    """
    error = intent.get("last_payment_error") or {}
    # A declined PaymentIntent drops its payment method; the error still names the one that failed.
    method = expandable_id(error.get("payment_method")) or expandable_id(intent.get("payment_method"))
    if authentication or intent.get("status") == "requires_action":
        return AUTHENTICATION_REQUIRED, str(intent.get("id") or ""), str(error.get("message") or ""), method
    code = decline_code_of(error.get("code"), error.get("decline_code"))
    reference = expandable_id(error.get("charge")) or str(intent.get("id") or "")
    return code, reference, str(error.get("message") or ""), method


def stripe_invoice_payment_failed(
    *,
    gateway: StripeGateway,
    invoice_id: str,
    actor: Actor,
    failed_at: datetime | None = None,
    authentication: bool = False,
) -> Outcome:
    """A payment of a Stripe invoice failed (``invoice.payment_failed``) or needs the customer to
    authenticate (``invoice.payment_action_required``): open the invoice's case, or record the failure on
    it. The customer and the invoice are created from Stripe when we do not have them."""
    data = gateway.fetch_invoice(invoice_id)
    status = data.get("status")
    if status in FINAL_AT_STRIPE:
        # Late or out of order: Stripe has moved on. Follow where it is now.
        return stripe_invoice_settled(gateway=gateway, invoice_id=invoice_id, actor=actor, data=data)
    if status != "open":
        return ignored(f"the invoice is {status} at Stripe: nothing to collect")
    invoice = stripe_invoice_local(gateway=gateway, data=data, actor=actor)
    if invoice is None:
        return ignored("the invoice cannot be copied here")
    defer_while_charging(invoice.pk)
    intent = gateway.invoice_payment_intent(data)
    code, reference, message, method_ref = _failure(intent, authentication=authentication)
    if not reference:
        reference = f"{invoice_id}:attempt-{data.get('attempt_count') or 0}"
    if PaymentAttempt.objects.filter(invoice=invoice, gateway_reference=reference).exists():
        return processed(f"failure {reference} was already recorded on invoice {invoice.number}")
    had_case = DunningCase.objects.filter(invoice=invoice).exists()
    method = (
        invoice.customer.payment_methods.filter(gateway_payment_method_id=method_ref).first()
        if method_ref
        else None
    )
    case = invoice_payment_failed(
        invoice=invoice,
        actor=actor,
        decline_code=code,
        decline_processor="stripe",
        payment_method=method,
        gateway=STRIPE,
        gateway_reference=reference,
        failed_at=failed_at,
        message=message,
    )
    if case is None:
        return processed(f"invoice {invoice.number} is already closed here: nothing to do")
    verb = "recorded another failure on" if had_case else "opened"
    return processed(f"{verb} case {case.pk} for invoice {invoice.number} ({code})")


def _recover(*, invoice: Invoice, actor: Actor, now: datetime, reason: str) -> str:
    case = (
        DunningCase.objects.select_for_update(no_key=True, of=("self",))
        .select_related("customer", "invoice", "policy_version")
        .filter(invoice=invoice)
        .first()
    )
    if case is None or not machine.can(case.state, machine.Event.RECOVER):
        return ""
    events = EventBuffer()
    cases_recover(
        recoveries=[
            Recovery(case=case, channel=RecoveryChannel.PAID_OUTSIDE, amount_minor=invoice.amount_paid_minor)
        ],
        actor=actor,
        now=now,
        events=events,
    )
    events.flush()
    return f"; case {case.pk} recovered ({reason})"


def _cancel(*, invoice: Invoice, actor: Actor, now: datetime, reason: str) -> str:
    case = (
        DunningCase.objects.select_for_update(no_key=True, of=("self",))
        .select_related("customer", "invoice")
        .filter(invoice=invoice)
        .first()
    )
    if case is None or not machine.can(case.state, machine.Event.CANCEL):
        return ""
    events = EventBuffer()
    saved = cases_save(
        cases=[case],
        actor=actor,
        now=now,
        events=events,
        transitions={case.pk: Transition(machine.Event.CANCEL, reason=reason)},
    )
    if case.pk in saved:
        effects.cases_closed(cases=[case], actor=actor, now=now, events=events)
    events.flush()
    return f"; case {case.pk} cancelled" if case.pk in saved else ""


def stripe_invoice_settled(
    *, gateway: StripeGateway, invoice_id: str, actor: Actor, data: Mapping[str, Any] | None = None
) -> Outcome:
    """Stripe says the invoice is paid, void or uncollectible (``invoice.paid``,
    ``invoice.payment_succeeded``, ``invoice.voided``, ``invoice.marked_uncollectible``, or a late failure
    report): close the local invoice and its case the same way. Paid: the case is recovered ("paid
    outside" unless our own charge paid it, in which case that charge's result recovers it)."""
    data = data if data is not None else gateway.fetch_invoice(invoice_id)
    status = str(data.get("status"))
    if status not in FINAL_AT_STRIPE:
        return ignored(f"the invoice is {status} at Stripe now: the event is out of date")
    invoice = stripe_invoice_local(gateway=gateway, data=data, actor=actor, create=False)
    if invoice is None:
        return ignored(f"invoice {invoice_id} is not tracked here")
    now = timezone.now()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update(no_key=True, of=("self",)).get(pk=invoice.pk)
        defer_while_charging(invoice.pk)
        transitions = data.get("status_transitions") or {}
        if status == "paid":
            paid_at = timestamp(transitions.get("paid_at")) or now
            closed = invoice_close(
                invoice=invoice,
                status=InvoiceStatus.PAID,
                actor=actor,
                reason="paid at Stripe",
                paid_at=paid_at,
                details={
                    "stripe_invoice": invoice_id,
                    "amount_paid": from_stripe_amount(int(data.get("amount_paid") or 0), invoice.currency),
                },
            )
            note = _recover(invoice=invoice, actor=actor, now=now, reason="paid at Stripe")
        else:
            closed = invoice_close(
                invoice=invoice,
                status=status,
                actor=actor,
                reason=f"{status} at Stripe",
                details={"stripe_invoice": invoice_id},
            )
            note = _cancel(invoice=invoice, actor=actor, now=now, reason=f"invoice {status} at Stripe")
    head = f"invoice {invoice.number} {'closed as' if closed else 'already'} {invoice.status}"
    return processed(head + note)
