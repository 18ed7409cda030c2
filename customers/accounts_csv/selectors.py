"""Reads for the account export: one row per customer in the CSV column order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import F, FilteredRelation, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from customers.models import Contact, ContactRole, Customer, Invoice, InvoiceStatus

EXPORT_CHUNK_ROWS = 5000


def account_export_rows(*, queryset: QuerySet[Customer]) -> Iterator[tuple[Any, ...]]:
    """Raw values for each customer of ``queryset``, ordered by ``external_id``.

    The billing contact is the oldest one with the billing role (the one an import updates first); the
    payment method is the default one. The open balance adds what is left to pay on open invoices in the
    customer's currency, in minor units; the oldest due date is that of the oldest open invoice.
    """
    billing = Contact.objects.filter(customer=OuterRef("pk"), role=ContactRole.BILLING).order_by("id")
    open_invoices = Invoice.objects.filter(customer=OuterRef("pk"), status=InvoiceStatus.OPEN).order_by()
    balance = (
        open_invoices.filter(currency=OuterRef("currency"))
        .values("customer")
        .annotate(total=Sum(F("amount_due_minor") - F("amount_paid_minor")))
        .values("total")
    )
    rows = (
        queryset.order_by("external_id")
        .alias(
            default_method=FilteredRelation("payment_methods", condition=Q(payment_methods__is_default=True))
        )
        .annotate(
            billing_name=Subquery(billing.values("name")[:1]),
            billing_email=Subquery(billing.values("email")[:1]),
            open_balance=Coalesce(Subquery(balance), 0),
            oldest_due=Subquery(open_invoices.order_by("due_at").values("due_at")[:1]),
        )
        .values_list(
            "external_id",
            "name",
            "email",
            "company",
            "segment",
            "currency",
            "locale",
            "time_zone",
            "billing_name",
            "billing_email",
            "default_method__type",
            "default_method__brand",
            "default_method__last4",
            "default_method__exp_month",
            "default_method__exp_year",
            "open_balance",
            "oldest_due",
        )
    )
    return rows.iterator(chunk_size=EXPORT_CHUNK_ROWS)
