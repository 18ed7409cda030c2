"""Payment methods at Stripe: new cards, card-updater changes, default changes; expiry reminders.

A new or changed default method is stored, hard-declined cases resume, and each open invoice in dunning is
retried once, at once, on it (``customer_payment_method_updated``). "Once" is read from the attempts
themselves: an invoice is owed a retry while it has no attempt on the default method since that method
last changed. So a duplicated or replayed event retries nothing, a card-updater change (new expiry) earns
one new try, and a retry that could not start because another charge of the invoice was in flight is
still owed: the event waits (``EventDeferred``) and the sweep runs it again.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from customers.actors import Actor
from customers.models import Customer, InvoiceStatus, PaymentMethod
from dunning.gateways.stripe import StripeGateway
from dunning.gateways.stripe_objects import (
    customer_default_method_id,
    expandable_id,
    method_details,
    timestamp,
)
from dunning.models import IN_FLIGHT_STATUSES, CaseState, DunningCase, PaymentAttempt, RecoveryChannel
from dunning.portal.tokens import portal_link_for
from dunning.services import communication
from dunning.services.predunning import REMINDER_7D, REMINDER_30D
from dunning.services.retry_owner import gateway_owns_retries
from dunning.services.staff import customer_payment_method_updated
from dunning.services.stripe_sync.common import EventDeferred, Outcome, ignored, processed
from dunning.services.stripe_sync.records import stripe_payment_method_record


def _owed_retries(customer: Customer, method: PaymentMethod) -> list[int]:
    """Open invoices in dunning (ours to retry) with no attempt on ``method`` since it last changed."""
    owed = []
    cases = DunningCase.objects.filter(
        customer=customer, state=CaseState.OPEN, invoice__status=InvoiceStatus.OPEN
    ).select_related("invoice")
    for case in cases:
        invoice = case.invoice
        if gateway_owns_retries(gateway=invoice.gateway, gateway_invoice_id=invoice.gateway_invoice_id):
            continue
        tried = PaymentAttempt.objects.filter(
            invoice=invoice, payment_method=method, created_at__gte=method.updated_at
        ).exists()
        if not tried:
            owed.append(invoice.pk)
    return owed


def _retry_if_owed(customer: Customer, method: PaymentMethod, actor: Actor, what: str) -> Outcome:
    owed = _owed_retries(customer, method)
    if not owed:
        return processed(f"{what}; nothing to retry")
    if PaymentAttempt.objects.filter(invoice_id__in=owed, status__in=IN_FLIGHT_STATUSES).exists():
        raise EventDeferred("a charge of this invoice is in flight; the new method is tried after it")
    attempts = customer_payment_method_updated(
        customer_id=customer.pk, actor=actor, channel=RecoveryChannel.CARD_UPDATED
    )
    if _owed_retries(customer, method):
        # Another charge started between our check and ours (a tick): try again once it has settled.
        raise EventDeferred("a charge of this invoice started meanwhile; the new method is tried after it")
    results = ", ".join(f"{a.invoice.number}: {a.status}" for a in attempts) or "nothing"
    return processed(f"{what}; retried at once: {results}")


def stripe_payment_method_changed(*, gateway: StripeGateway, payment_method_id: str, actor: Actor) -> Outcome:
    """``payment_method.attached``, ``.updated`` and ``.automatically_updated`` (card account updater)."""
    method = gateway.fetch_payment_method(payment_method_id)
    customer_ref = expandable_id(method.get("customer"))
    if not customer_ref:
        return ignored("the payment method is not attached to a customer (any more)")
    customer = Customer.objects.filter(gateway_customer_id=customer_ref).first()
    if customer is None:
        return ignored(f"customer {customer_ref} is not tracked here")
    default_ref = customer_default_method_id(gateway.fetch_customer(customer_ref))
    # With no default at Stripe, the newest method is the one to charge (we always name it explicitly).
    is_default = default_ref in ("", method["id"])
    stored, changed = stripe_payment_method_record(
        customer=customer, details=method_details(method), make_default=is_default, actor=actor
    )
    if not is_default:
        return processed(f"stored {stored} (not the default at Stripe: nothing retried)")
    return _retry_if_owed(
        customer, stored, actor, f"{'stored' if changed else 'unchanged:'} {stored} (default)"
    )


def stripe_customer_default_changed(*, gateway: StripeGateway, customer_ref: str, actor: Actor) -> Outcome:
    """``customer.updated`` where the default payment method changed."""
    customer = Customer.objects.filter(gateway_customer_id=customer_ref).first()
    if customer is None:
        return ignored(f"customer {customer_ref} is not tracked here")
    default_ref = customer_default_method_id(gateway.fetch_customer(customer_ref))
    if not default_ref:
        return ignored("the customer has no default payment method at Stripe")
    details = method_details(gateway.fetch_payment_method(default_ref))
    stored, changed = stripe_payment_method_record(
        customer=customer, details=details, make_default=True, actor=actor
    )
    return _retry_if_owed(
        customer, stored, actor, f"{stored} {'is the new' if changed else 'was already the'} default"
    )


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _remind(*, customer: Customer, step_ref: str, days_left: int, now: datetime) -> Outcome:
    template = REMINDER_7D if days_left <= 7 else REMINDER_30D
    queued = communication.send_messages(
        intents=[
            communication.MessageIntent(
                customer_id=customer.pk,
                case_id=None,
                step_ref=f"{step_ref}:{template}"[:100],
                template_key=template,
                invoice_id=None,
                # A signed link for this customer (no invoice: the card is what needs updating).
                context={"portal_url": portal_link_for(customer_id=customer.pk, source="email")},
            )
        ],
        now=now,
    )
    if not queued:
        return processed(f"{template} reminder already queued (or no address): nothing new")
    return processed(f"{template} reminder queued")


def stripe_card_expiring(
    *, gateway: StripeGateway, card: Mapping[str, Any], actor: Actor, now: datetime
) -> Outcome:
    """``customer.source.expiring``: the card Stripe charges expires at the end of its month."""
    customer_ref = expandable_id(card.get("customer"))
    customer = Customer.objects.filter(gateway_customer_id=customer_ref).first() if customer_ref else None
    if customer is None:
        return ignored(f"customer {customer_ref or '?'} is not tracked here")
    details = method_details(card)
    if not (details.exp_month and details.exp_year):
        return ignored("the card has no expiry date")
    if customer_default_method_id(gateway.fetch_customer(customer_ref)) != details.gateway_payment_method_id:
        return ignored("the expiring card is not the one charged for invoices")
    stripe_payment_method_record(customer=customer, details=details, make_default=True, actor=actor)
    days_left = (_month_end(details.exp_year, details.exp_month) - now.date()).days
    if days_left < 0:
        return ignored("the card has already expired")
    return _remind(
        customer=customer,
        step_ref=f"predunning:{details.gateway_payment_method_id}:{details.exp_year}-{details.exp_month:02d}",
        # (the same message key as the daily scan in dunning.services.predunning: one reminder, not two)
        days_left=days_left,
        now=now,
    )


def stripe_invoice_upcoming(
    *, gateway: StripeGateway, invoice: Mapping[str, Any], actor: Actor, now: datetime
) -> Outcome:
    """``invoice.upcoming``: remind the customer if the card on file will have expired by the charge date."""
    if invoice.get("collection_method") == "send_invoice":
        return ignored("the customer pays this invoice by hand: no card involved")
    customer_ref = expandable_id(invoice.get("customer"))
    customer = Customer.objects.filter(gateway_customer_id=customer_ref).first() if customer_ref else None
    if customer is None:
        return ignored(f"customer {customer_ref or '?'} is not tracked here")
    charge_at = (
        timestamp(invoice.get("next_payment_attempt"))
        or timestamp(invoice.get("due_date"))
        or timestamp(invoice.get("period_end"))
    )
    if charge_at is None:
        return ignored("the upcoming invoice has no charge date")
    stripe_customer = gateway.fetch_customer(customer_ref)
    method_ref = expandable_id(invoice.get("default_payment_method")) or customer_default_method_id(
        stripe_customer
    )
    if not method_ref:
        return ignored("no payment method on file at Stripe")
    details = method_details(gateway.fetch_payment_method(method_ref))
    is_default = method_ref == customer_default_method_id(stripe_customer)
    stored, _ = stripe_payment_method_record(
        customer=customer, details=details, make_default=is_default, actor=actor
    )
    probe = PaymentMethod(exp_month=stored.exp_month, exp_year=stored.exp_year)
    if not probe.expires_before(charge_at):
        return ignored(f"{stored} is still valid on {charge_at:%Y-%m-%d}")
    return _remind(
        customer=customer,
        step_ref=f"predunning:upcoming:{method_ref}:{charge_at:%Y-%m-%d}",
        days_left=(charge_at.date() - now.date()).days,
        now=now,
    )
