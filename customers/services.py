"""Writes for the customers layer. Keyword-only; every state change leaves an AuditEvent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from customers.actors import Actor
from customers.models import (
    AuditEvent,
    Customer,
    EntitlementState,
    Invoice,
    InvoiceStatus,
    PaymentMethod,
)


def audit_record(
    *,
    actor: Actor,
    action: str,
    customer: Customer | None = None,
    customer_id: int | None = None,
    invoice: Invoice | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        **actor.audit_fields(),
        action=action,
        customer_id=customer.pk if customer is not None else customer_id,
        invoice=invoice,
        reason=reason,
        details=details or {},
    )


def customer_create(*, actor: Actor, **fields: Any) -> Customer:
    """Create a customer after full validation (currency, time zone, locale, constraints)."""
    customer = Customer(**fields)
    customer.full_clean()
    with transaction.atomic():
        customer.save()
        audit_record(actor=actor, action="customer.created", customer=customer)
    return customer


def customer_set_entitlement(*, customer: Customer, state: str, actor: Actor, reason: str = "") -> bool:
    """Move the customer's entitlement state. Returns False (and writes nothing) when it is already there."""
    if state not in EntitlementState.values:
        raise ValueError(f"unknown entitlement state {state!r}")
    with transaction.atomic():
        previous = (
            Customer.objects.select_for_update()
            .filter(pk=customer.pk)
            .values_list("entitlement_state", flat=True)
        ).get()
        if previous == state:
            return False
        Customer.objects.filter(pk=customer.pk).update(entitlement_state=state, updated_at=timezone.now())
        audit_record(
            actor=actor,
            action="customer.entitlement_changed",
            customer=customer,
            reason=reason,
            details={"from": previous, "to": state},
        )
    customer.entitlement_state = state
    return True


def invoice_create(*, actor: Actor, **fields: Any) -> Invoice:
    invoice = Invoice(**fields)
    invoice.full_clean()
    with transaction.atomic():
        invoice.save()
        audit_record(actor=actor, action="invoice.created", customer=invoice.customer, invoice=invoice)
    return invoice


def invoice_close(
    *,
    invoice: Invoice,
    status: str,
    actor: Actor,
    reason: str = "",
    paid_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> bool:
    """Move an open (or draft) invoice to a final status: paid, void or uncollectible.

    Final states are final: the conditional UPDATE only matches a non-final row, so a late or duplicated
    event can never move a paid invoice anywhere else. Returns True only for the call that closed it.
    """
    if status not in (InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        raise ValueError(f"{status!r} is not a final invoice status")
    now = timezone.now()
    changes: dict[str, Any] = {"status": status, "updated_at": now}
    with transaction.atomic():
        if status == InvoiceStatus.PAID:
            changes.update(amount_paid_minor=F("amount_due_minor"), paid_at=paid_at or now)
        updated = Invoice.objects.filter(
            pk=invoice.pk, status__in=[InvoiceStatus.DRAFT, InvoiceStatus.OPEN]
        ).update(**changes)
        if not updated:
            return False
        audit_record(
            actor=actor,
            action=f"invoice.{status}",
            customer_id=invoice.customer_id,
            invoice=invoice,
            reason=reason,
            details=details,
        )
    invoice.refresh_from_db(fields=["status", "amount_paid_minor", "paid_at", "updated_at"])
    return True


def payment_method_set_default(*, payment_method: PaymentMethod, actor: Actor) -> None:
    """Make this method the customer's default; the one-default constraint holds throughout."""
    with transaction.atomic():
        PaymentMethod.objects.filter(customer_id=payment_method.customer_id, is_default=True).exclude(
            pk=payment_method.pk
        ).update(is_default=False)
        PaymentMethod.objects.filter(pk=payment_method.pk).update(is_default=True, updated_at=timezone.now())
        audit_record(
            actor=actor,
            action="payment_method.default_changed",
            customer_id=payment_method.customer_id,
            details={"payment_method_id": payment_method.pk},
        )
    payment_method.is_default = True
