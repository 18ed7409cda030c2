"""Reads for the account export: one row per customer in the CSV column order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from django.db import connections
from django.db.models import F, FilteredRelation, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from customers.accounts_csv.columns import ESCAPED_STARTS
from customers.currencies import MINOR_UNIT_EXPONENTS
from customers.models import Contact, ContactRole, Customer, Invoice, InvoiceStatus

EXPORT_CHUNK_ROWS = 5000


# Text columns get the same spreadsheet-formula escaping as ``columns.escape_cell``, done by PostgreSQL.
# The query's columns, in the CSV's order: these, the expiry month and year, the method's funding and
# issuing country (METHOD_DETAIL_COLUMNS, text too), then the open balance and the oldest due date.
_ESCAPED_COLUMNS = (
    "external_id",
    "name",
    "email",
    "company",
    "segment",
    "currency",
    "locale",
    "time_zone",
    "country",
    "billing_name",
    "billing_email",
    "default_method__type",
    "default_method__brand",
    "default_method__last4",
)
METHOD_DETAIL_COLUMNS = ("default_method__funding", "default_method__country")


def account_export_rows(*, queryset: QuerySet[Customer]) -> Iterator[tuple[Any, ...]]:
    """Raw values for each customer of ``queryset``, ordered by ``external_id``, streamed in chunks."""
    return account_export_queryset(queryset=queryset).iterator(chunk_size=EXPORT_CHUNK_ROWS)


def account_export_queryset(*, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """The export's query: one tuple per customer of ``queryset`` in the CSV column order.

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
    return (
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
            *_ESCAPED_COLUMNS,
            "default_method__exp_month",
            "default_method__exp_year",
            *METHOD_DETAIL_COLUMNS,
            "open_balance",
            "oldest_due",
        )
    )


def _escaped(column: str) -> str:
    starts = ", ".join(["'" + c.replace("'", "''") + "'" for c in ESCAPED_STARTS if c != "\0"])
    value = f'e."{column}"'
    # NULLIF: an empty string comes out as an empty cell, as from Python's csv writer, not as "".
    return f"NULLIF(CASE WHEN left({value}, 1) IN ({starts}) THEN '''' || {value} ELSE {value} END, '')"


def account_export_copy_sql(*, queryset: QuerySet[Customer]) -> str:
    """PostgreSQL only: the export query with escaping and formatting done in SQL, ready for ``COPY (…) TO``.

    Produces exactly what the Python path writes (the tests run both): escaped text, the balance in major
    units with the currency's decimals, the oldest due date as an ISO date in UTC.
    """
    inner = account_export_queryset(queryset=queryset)
    sql, params = inner.query.sql_with_params()
    connection = connections[inner.db]
    connection.ensure_connection()
    with psycopg.ClientCursor(connection.connection) as cursor:
        literal_sql = cursor.mogrify(sql, params)
    scales = ", ".join(
        f"('{code}', {exponent}, {10**exponent})" for code, exponent in MINOR_UNIT_EXPONENTS.items()
    )
    balance = (
        "CASE WHEN fx.exponent = 0 THEN e.open_balance::text "
        "ELSE div(e.open_balance, fx.scale)::text || '.' "
        "|| lpad(mod(e.open_balance, fx.scale)::text, fx.exponent, '0') END"
    )
    columns = [
        *(_escaped(c) for c in _ESCAPED_COLUMNS),
        'e."default_method__exp_month"',
        'e."default_method__exp_year"',
        *(_escaped(c) for c in METHOD_DETAIL_COLUMNS),
        balance,
        """to_char(e."oldest_due" AT TIME ZONE 'UTC', 'YYYY-MM-DD')""",
    ]
    return (
        f"SELECT {', '.join(columns)} FROM ({literal_sql}) e "
        f"JOIN (VALUES {scales}) AS fx (code, exponent, scale) ON fx.code = e.currency "
        f'ORDER BY e."external_id"'
    )
