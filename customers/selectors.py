"""Reads for the customers layer."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from customers.models import Customer, Invoice, InvoiceStatus


def overdue_invoices(*, customer: Customer | None = None, now: datetime | None = None) -> QuerySet[Invoice]:
    """Open invoices past their due date with something left to pay."""
    now = now or timezone.now()
    invoices = Invoice.objects.filter(
        status=InvoiceStatus.OPEN, due_at__lt=now, amount_paid_minor__lt=F("amount_due_minor")
    )
    if customer is not None:
        invoices = invoices.filter(customer=customer)
    return invoices


def customer_overdue_balances(*, customer: Customer, now: datetime | None = None) -> dict[str, int]:
    """The customer's overdue balance per currency, in minor units: ``{"EUR": 12300, "USD": 990}``.

    Amounts in different currencies are never added together.
    """
    rows = (
        overdue_invoices(customer=customer, now=now)
        .values("currency")
        .annotate(balance=Sum(F("amount_due_minor") - F("amount_paid_minor")))
        .order_by("currency")
    )
    return {row["currency"]: row["balance"] for row in rows}


def customer_open_balances(*, customer: Customer) -> dict[str, int]:
    """What the customer owes on open invoices (due or not yet), per currency, in minor units."""
    rows = (
        Invoice.objects.filter(
            customer=customer, status=InvoiceStatus.OPEN, amount_paid_minor__lt=F("amount_due_minor")
        )
        .values("currency")
        .annotate(balance=Sum(F("amount_due_minor") - F("amount_paid_minor")))
        .order_by("currency")
    )
    return {row["currency"]: row["balance"] for row in rows}
