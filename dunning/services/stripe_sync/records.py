"""Local copies of Stripe customers, payment methods and invoices, keyed by Stripe's ids.

Idempotent: a second call with the same Stripe object changes nothing and writes no audit row. Concurrent
calls for the same object (two events about one new customer) end with one row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from customers.actors import Actor
from customers.currencies import is_currency
from customers.models import Customer, Invoice, InvoiceStatus, PaymentMethod
from customers.services import audit_record, customer_create, invoice_create, payment_method_save
from customers.validators import validate_locale
from dunning.gateways import PaymentMethodDetails
from dunning.gateways.stripe import StripeGateway
from dunning.gateways.stripe_amounts import from_stripe_amount
from dunning.gateways.stripe_objects import (
    country_code,
    customer_default_method_id,
    expandable_id,
    method_details,
    timestamp,
)
from dunning.services.stripe_sync.common import STRIPE

OPEN_STATUSES = {"open": InvoiceStatus.OPEN, "draft": InvoiceStatus.DRAFT}
MAX_LINES = 50


def _locale(data: Mapping[str, Any]) -> str:
    for candidate in data.get("preferred_locales") or []:
        try:
            validate_locale(str(candidate))
        except ValidationError:
            continue
        return str(candidate)
    return "en"


def stripe_customer_upsert(*, data: Mapping[str, Any], actor: Actor, fallback_currency: str = "") -> Customer:
    """The local customer for a Stripe customer: found by Stripe id, else by ``metadata.external_id`` (and
    linked), else created with the Stripe id as its external id."""
    stripe_id = str(data["id"])
    found = Customer.objects.filter(gateway_customer_id=stripe_id).first()
    if found is not None:
        return found
    external_id = str((data.get("metadata") or {}).get("external_id") or "").strip()
    if external_id:
        found = Customer.objects.filter(external_id=external_id).first()
        if found is not None:
            if not found.gateway_customer_id:
                Customer.objects.filter(pk=found.pk, gateway_customer_id="").update(
                    gateway_customer_id=stripe_id, updated_at=timezone.now()
                )
                audit_record(
                    actor=actor,
                    action="customer.gateway_linked",
                    customer=found,
                    details={"gateway_customer_id": stripe_id},
                )
                found.gateway_customer_id = stripe_id
            return found
    currency = str(data.get("currency") or fallback_currency or "usd").upper()
    try:
        with transaction.atomic():
            return customer_create(
                actor=actor,
                external_id=external_id or stripe_id,
                name=str(data.get("name") or data.get("email") or stripe_id)[:200],
                email=str(data.get("email") or ""),
                currency=currency if is_currency(currency) else "USD",
                locale=_locale(data),
                gateway_customer_id=stripe_id,
                # Smart retry timing reads paydays by country; Stripe knows the billing address's.
                country=country_code((data.get("address") or {}).get("country")),
            )
    except (IntegrityError, ValidationError):
        # Created meanwhile by another event about the same customer; anything else is a real error.
        found = Customer.objects.filter(
            Q(gateway_customer_id=stripe_id) | Q(external_id=external_id or stripe_id)
        ).first()
        if found is None:
            raise
        return found


def stripe_customer_for(
    *, gateway: StripeGateway, customer_ref: str, actor: Actor, currency: str = ""
) -> Customer:
    """The local customer, fetched from Stripe and created if we do not have it yet, with the payment
    method Stripe charges (so that dunning has a method to retry and to block after a hard decline)."""
    found = Customer.objects.filter(gateway_customer_id=customer_ref).first()
    if found is not None:
        return found
    data = gateway.fetch_customer(customer_ref)
    customer = stripe_customer_upsert(data=data, actor=actor, fallback_currency=currency)
    default_ref = customer_default_method_id(data)
    if default_ref and not customer.payment_methods.filter(gateway_payment_method_id=default_ref).exists():
        stripe_payment_method_record(
            customer=customer,
            details=method_details(gateway.fetch_payment_method(default_ref)),
            make_default=True,
            actor=actor,
        )
    return customer


def stripe_payment_method_record(
    *, customer: Customer, details: PaymentMethodDetails, make_default: bool, actor: Actor
) -> tuple[PaymentMethod, bool]:
    """Store what Stripe holds; returns (method, changed). Unchanged methods are left alone (no audit row),
    so replays and duplicate events are silent."""
    before = PaymentMethod.objects.filter(
        customer=customer, gateway_payment_method_id=details.gateway_payment_method_id
    ).first()
    wanted = (
        details.type,
        details.brand,
        details.last4,
        details.exp_month,
        details.exp_year,
        details.funding,
        details.country,
    )
    if before is not None:
        current = (
            before.type,
            before.brand,
            before.last4,
            before.exp_month,
            before.exp_year,
            before.funding,
            before.country,
        )
        if current == wanted and (before.is_default or not make_default):
            return before, False
    method, _ = payment_method_save(
        customer=customer,
        actor=actor,
        gateway_payment_method_id=details.gateway_payment_method_id,
        type=details.type,
        brand=details.brand,
        last4=details.last4,
        exp_month=details.exp_month,
        exp_year=details.exp_year,
        funding=details.funding,
        country=details.country,
        make_default=make_default,
    )
    return method, True


def _lines(data: Mapping[str, Any], currency: str) -> list[dict[str, Any]]:
    lines = (data.get("lines") or {}).get("data") or []
    return [
        {
            "description": str(line.get("description") or "")[:200],
            "quantity": line.get("quantity") or 1,
            "amount_minor": from_stripe_amount(int(line.get("amount") or 0), currency),
        }
        for line in lines[:MAX_LINES]
    ]


def _free_number(data: Mapping[str, Any]) -> str:
    """Stripe's invoice number, unless another invoice already has it here (then Stripe's id)."""
    number = str(data.get("number") or "")[:64]
    if number and not Invoice.objects.filter(number=number).exists():
        return number
    return str(data["id"])[:64]


def stripe_invoice_upsert(*, data: Mapping[str, Any], customer: Customer, actor: Actor) -> Invoice | None:
    """The local copy of a Stripe invoice. Open and draft invoices are created when missing; an invoice
    that is already paid, void or uncollectible at Stripe is never created (nothing to dun). An open local
    copy takes Stripe's amounts (a credit note may have lowered them)."""
    existing = Invoice.objects.filter(gateway=STRIPE, gateway_invoice_id=data["id"]).first()
    currency = str(data["currency"]).upper()
    amount_due = from_stripe_amount(int(data.get("amount_due") or 0), currency)
    amount_paid = from_stripe_amount(int(data.get("amount_paid") or 0), currency)
    if existing is not None:
        stale = (existing.amount_due_minor, existing.amount_paid_minor) != (amount_due, amount_paid)
        if (
            stale
            and not existing.is_final
            and data.get("status") in OPEN_STATUSES
            and amount_paid <= amount_due
        ):
            Invoice.objects.filter(pk=existing.pk, status__in=list(OPEN_STATUSES.values())).update(
                amount_due_minor=amount_due, amount_paid_minor=amount_paid, updated_at=timezone.now()
            )
            audit_record(
                actor=actor,
                action="invoice.synced",
                customer_id=existing.customer_id,
                invoice=existing,
                reason="amounts changed at Stripe",
                details={
                    "from": [existing.amount_due_minor, existing.amount_paid_minor],
                    "to": [amount_due, amount_paid],
                },
            )
            existing.amount_due_minor, existing.amount_paid_minor = amount_due, amount_paid
        return existing
    status = OPEN_STATUSES.get(str(data.get("status")))
    if status is None:
        return None
    transitions = data.get("status_transitions") or {}
    due_at = (
        timestamp(data.get("due_date"))
        or timestamp(transitions.get("finalized_at"))
        or timestamp(data.get("created"))
        or timezone.now()
    )
    try:
        with transaction.atomic():
            return invoice_create(
                actor=actor,
                customer=customer,
                number=_free_number(data),
                amount_due_minor=amount_due,
                amount_paid_minor=amount_paid,
                currency=currency,
                status=status,
                due_at=due_at,
                period_start=timestamp(data.get("period_start")),
                period_end=timestamp(data.get("period_end")),
                lines=_lines(data, currency),
                gateway=STRIPE,
                gateway_invoice_id=str(data["id"]),
            )
    except (IntegrityError, ValidationError):
        existing = Invoice.objects.filter(gateway=STRIPE, gateway_invoice_id=data["id"]).first()
        if existing is None:
            raise
        return existing


def stripe_invoice_local(
    *, gateway: StripeGateway, data: Mapping[str, Any], actor: Actor, create: bool = True
) -> Invoice | None:
    """The local invoice for a Stripe invoice, with its customer created from Stripe when missing."""
    existing = Invoice.objects.filter(gateway=STRIPE, gateway_invoice_id=data["id"]).select_related(
        "customer"
    )
    found = existing.first()
    if found is not None or not create:
        if found is not None and data.get("status") in OPEN_STATUSES:
            stripe_invoice_upsert(data=data, customer=found.customer, actor=actor)
        return found
    customer = stripe_customer_for(
        gateway=gateway,
        customer_ref=expandable_id(data.get("customer")),
        actor=actor,
        currency=str(data.get("currency") or ""),
    )
    return stripe_invoice_upsert(data=data, customer=customer, actor=actor)
