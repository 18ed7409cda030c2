"""Row locks in the one order every writer uses: invoices, then cases, then attempts, each by ascending id.

Two writers that lock overlapping rows in the same order wait for each other instead of deadlocking. A
bulk UPDATE locks rows in whatever order its join produces, so writers lock first, in order, with one
SELECT per table, and update afterwards. SQLite has one writer at a time: the SELECTs only read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from customers.models import Invoice
from dunning.models import DunningCase


def _lock_clause() -> str:
    return "FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""


def _ids(values: Iterable[int]) -> list[int]:
    return sorted(set(values))


def _in(column: str, ids: list[int]) -> tuple[str, list[object]]:
    """``column IN ids``: one array parameter on PostgreSQL (no thousands of placeholders to parse)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def invoices_lock(*, invoice_ids: Iterable[int]) -> dict[int, str]:
    """Lock invoices (NO KEY: attempt inserts elsewhere only need KEY SHARE); returns {id: status now}."""
    ids = _ids(invoice_ids)
    if not ids:
        return {}
    table = Invoice._meta.db_table
    condition, params = _in("id", ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, status FROM {table} WHERE {condition} ORDER BY id {_lock_clause()}", params
        )
        return dict(cursor.fetchall())


@dataclass(frozen=True)
class LockedCase:
    version: int
    invoice_status: str


def cases_lock(*, case_ids: Iterable[int]) -> dict[int, LockedCase]:
    """Lock cases and read, per case, its version now and its invoice's status now (not locked: lock the
    invoices you will write with :func:`invoices_lock` first)."""
    ids = _ids(case_ids)
    if not ids:
        return {}
    cases, invoices = DunningCase._meta.db_table, Invoice._meta.db_table
    lock = "FOR NO KEY UPDATE OF c" if connection.vendor == "postgresql" else ""
    condition, params = _in("c.id", ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id, c.version, i.status FROM {cases} c JOIN {invoices} i ON i.id = c.invoice_id "
            f"WHERE {condition} ORDER BY c.id {lock}",
            params,
        )
        return {case_id: LockedCase(version, status) for case_id, version, status in cursor.fetchall()}
