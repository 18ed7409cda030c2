"""Writes for the customers layer. Keyword-only; every state change leaves an AuditEvent."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from customers.actors import Actor
from customers.bulk import insert_rows
from customers.models import (
    AuditEvent,
    Customer,
    EntitlementState,
    Invoice,
    InvoiceStatus,
    PaymentMethod,
)

AUDIT_COLUMNS = (
    "occurred_at",
    "actor_type",
    "actor_user",
    "actor_label",
    "action",
    "customer",
    "invoice",
    "reason",
    "details",
)


def _insert_audit(rows: list[AuditEvent]) -> None:
    """One INSERT for many audit rows, without Django's per-instance save machinery."""
    insert_rows(
        AuditEvent,
        AUDIT_COLUMNS,
        [
            tuple(getattr(row, AuditEvent._meta.get_field(name).attname) for name in AUDIT_COLUMNS)
            for row in rows
        ],
    )


class AuditBuffer:
    """Collects audit rows so a batch of changes costs one INSERT; flushed by whoever opened it."""

    def __init__(self) -> None:
        self.rows: list[AuditEvent] = []

    def add(self, event: AuditEvent) -> None:
        self.rows.append(event)

    def flush(self) -> int:
        count = len(self.rows)
        if self.rows:
            _insert_audit(self.rows)
            self.rows = []
        return count


def _write_audit(rows: list[AuditEvent], audit: AuditBuffer | None) -> None:
    if audit is not None:
        audit.rows.extend(rows)
    elif rows:
        _insert_audit(rows)


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
    changed = customers_set_entitlement_many(
        customer_ids=[customer.pk], state=state, actor=actor, reason=reason
    )
    if changed:
        customer.entitlement_state = state
    return bool(changed)


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
    closed = invoices_close_many(
        invoice_ids=[invoice.pk],
        status=status,
        actor=actor,
        reason=reason,
        now=paid_at,
        details_by_invoice={invoice.pk: details or {}},
    )
    invoice.refresh_from_db(fields=["status", "amount_paid_minor", "paid_at", "updated_at"])
    return bool(closed)


def invoice_payment_record(
    *,
    invoice: Invoice,
    amount_minor: int,
    actor: Actor,
    paid_at: datetime | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> bool:
    """Record a part payment received outside the gateway: the invoice stays open for what is left.

    One conditional UPDATE: it matches only an open invoice for which ``amount_minor`` leaves something
    to pay, so two staff members recording payments at once can never push it to or past the amount due
    (the whole remainder is recorded with :func:`invoice_close`, which marks the invoice paid). Returns
    True when this call recorded the payment; the caller's ``invoice`` is refreshed either way.
    """
    if amount_minor <= 0:
        raise ValueError("a payment is a positive amount in minor units")
    now = timezone.now()
    with transaction.atomic():
        updated = Invoice.objects.filter(
            pk=invoice.pk,
            status=InvoiceStatus.OPEN,
            amount_paid_minor__lt=F("amount_due_minor") - amount_minor,
        ).update(amount_paid_minor=F("amount_paid_minor") + amount_minor, updated_at=now)
        if updated:
            audit_record(
                actor=actor,
                action="invoice.payment_recorded",
                customer_id=invoice.customer_id,
                invoice=invoice,
                reason=reason,
                details={
                    **(details or {}),
                    "amount_minor": amount_minor,
                    "currency": invoice.currency,
                    "paid_at": (paid_at or now).isoformat(),
                },
            )
    invoice.refresh_from_db(fields=["status", "amount_paid_minor", "paid_at", "updated_at"])
    return bool(updated)


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


def invoices_close_many(
    *,
    invoice_ids: list[int],
    status: str,
    actor: Actor,
    reason: str = "",
    now: datetime | None = None,
    details_by_invoice: dict[int, dict[str, Any]] | None = None,
    audit: AuditBuffer | None = None,
) -> list[int]:
    """Set-based :func:`invoice_close` for the dunning tick: two statements for any number of invoices
    (one when the caller collects the audit rows in an :class:`AuditBuffer`).

    Returns the ids that this call closed; invoices already in a final state are left exactly as they are.
    """
    if status not in (InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        raise ValueError(f"{status!r} is not a final invoice status")
    if not invoice_ids:
        return []
    now = now or timezone.now()
    connection = connections[router.db_for_write(Invoice)]
    paid_columns = (
        ", amount_paid_minor = amount_due_minor, paid_at = %s" if status == InvoiceStatus.PAID else ""
    )
    sql = (
        f"UPDATE {Invoice._meta.db_table} SET status = %s, updated_at = %s{paid_columns} "
        f"WHERE id IN ({', '.join(['%s'] * len(invoice_ids))}) AND status IN (%s, %s) "
        "RETURNING id, customer_id"
    )
    params: list[Any] = [status, now, *([now] if paid_columns else []), *invoice_ids]
    params += [InvoiceStatus.DRAFT, InvoiceStatus.OPEN]
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(sql, params)
        closed = dict(cursor.fetchall())
        _write_audit(
            [
                AuditEvent(
                    **actor.audit_fields(),
                    occurred_at=now,
                    action=f"invoice.{status}",
                    customer_id=customer_id,
                    invoice_id=invoice_id,
                    reason=reason,
                    details=(details_by_invoice or {}).get(invoice_id, {}),
                )
                for invoice_id, customer_id in closed.items()
            ],
            audit,
        )
    return list(closed)


def customers_lock(*, customer_ids: Iterable[int]) -> None:
    """Lock these customers' rows until the caller's transaction ends, in id order so that two callers
    never deadlock. For a decision that first reads other rows of the customer (are any of its cases still
    open?): a concurrent transaction making the same decision waits, then reads what this one committed."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    with transaction.atomic(savepoint=False):
        list(
            Customer.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


def customers_set_entitlement_many(
    *,
    customer_ids: list[int],
    state: str,
    actor: Actor,
    reason: str = "",
    now: datetime | None = None,
    only_from: list[str] | None = None,
    audit: AuditBuffer | None = None,
) -> dict[int, str]:
    """Set-based :func:`customer_set_entitlement`: returns {customer id: previous state} for those it moved.

    ``only_from`` restricts the move to customers currently in one of those states (dunning only ever moves
    access forward: a degrade step must not lift a suspension).
    """
    if state not in EntitlementState.values:
        raise ValueError(f"unknown entitlement state {state!r}")
    if not customer_ids:
        return {}
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):
        candidates = (
            Customer.objects.select_for_update(no_key=True, of=("self",))
            .filter(pk__in=customer_ids)
            .exclude(entitlement_state=state)
            .order_by("pk")  # one lock order for every caller: no deadlock between tick workers
        )
        if only_from is not None:
            candidates = candidates.filter(entitlement_state__in=only_from)
        previous = dict(candidates.values_list("pk", "entitlement_state"))
        if not previous:
            return {}
        Customer.objects.filter(pk__in=previous).update(entitlement_state=state, updated_at=now)
        _write_audit(
            [
                AuditEvent(
                    **actor.audit_fields(),
                    occurred_at=now,
                    action="customer.entitlement_changed",
                    customer_id=customer_id,
                    reason=reason,
                    details={"from": old, "to": state},
                )
                for customer_id, old in previous.items()
            ],
            audit,
        )
    return previous


def payment_method_save(
    *,
    customer: Customer,
    actor: Actor,
    gateway_payment_method_id: str,
    type: str = "card",
    brand: str = "",
    last4: str = "",
    exp_month: int | None = None,
    exp_year: int | None = None,
    make_default: bool = True,
    funding: str | None = None,
    country: str | None = None,
) -> tuple[PaymentMethod, bool]:
    """Record a payment method the gateway holds (new, or updated by a card account updater).

    Keyed on the gateway id within the customer; returns (method, created). With ``make_default`` it
    becomes the customer's default, the previous default kept as an ordinary method.
    """
    with transaction.atomic():
        method = (
            PaymentMethod.objects.select_for_update(no_key=True, of=("self",))
            .filter(customer=customer, gateway_payment_method_id=gateway_payment_method_id)
            .first()
            if gateway_payment_method_id
            else None
        )
        created = method is None
        method = method or PaymentMethod(
            customer=customer, gateway_payment_method_id=gateway_payment_method_id
        )
        wanted = {"type": type, "brand": brand, "last4": last4, "exp_month": exp_month, "exp_year": exp_year}
        # Funding and country only when the gateway told us (None: keep what we have).
        wanted.update({k: v for k, v in (("funding", funding), ("country", country)) if v is not None})
        changed = {name: value for name, value in wanted.items() if getattr(method, name) != value}
        if created or changed:
            for name, value in wanted.items():
                setattr(method, name, value)
            method.full_clean(exclude=["customer", "is_default"])
            method.save()
            # A replayed webhook or a repeated confirmation records nothing: only real changes are audited.
            audit_record(
                actor=actor,
                action="payment_method.added" if created else "payment_method.updated",
                customer=customer,
                details={
                    "payment_method_id": method.pk,
                    "brand": brand,
                    "last4": last4,
                    "changed": sorted(changed),
                },
            )
        if make_default and not method.is_default:
            payment_method_set_default(payment_method=method, actor=actor)
    return method, created
