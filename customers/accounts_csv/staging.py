"""The set-based half of the importer: a temporary staging table, checks across rows, and the upsert.

Validated rows are streamed into a temporary table (``COPY`` on PostgreSQL, ``executemany`` on SQLite).
Everything after that is a handful of SQL statements over whole tables, whatever the number of rows:

1. duplicates of ``external_id`` inside the file;
2. a plan: for each row, is the account new, changed or unchanged, and what happens to its billing contact
   and default payment method;
3. the writes, in one transaction, touching only new and changed rows, with an audit row (old and new
   values) for each changed account.

The SQL is written once for both databases: SQLite (3.39+) understands ``UPDATE … FROM``,
``IS NOT DISTINCT FROM`` and window functions. Only JSON building and bulk loading differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections, transaction

from customers.accounts_csv.columns import CUSTOMER_FIELDS
from customers.accounts_csv.validation import STAGE_COLUMNS, RowError
from customers.actors import Actor
from customers.models import CardFunding

STAGE = "customers_import_stage"
PLAN = "customers_import_plan"
# Imports on PostgreSQL run one at a time: a second one waits for this transaction-level lock, so two files
# creating the same external_id never race each other into a unique-constraint error.
ADVISORY_LOCK_KEY = 0x61636374  # "acct"
WORK_MEM = "64MB"

CONTACT_INSERT = "INSERT INTO customers_contact (customer_id, role, name, email, created_at)"
METHOD_INSERT = """
    INSERT INTO customers_paymentmethod (
        customer_id, type, brand, last4, exp_month, exp_year, funding, country, gateway_payment_method_id,
        is_default, created_at, updated_at
    )
"""
# A row that leaves funding or issuing country empty says nothing about them: a new method gets the model's
# defaults (the same as the column defaults), an existing one keeps what it has.
NEW_METHOD_FUNDING = f"COALESCE(pm_funding, '{CardFunding.UNKNOWN.value}')"
NEW_METHOD_COUNTRY = "COALESCE(pm_country, '')"
_STAGE_TYPES = {"line": "integer", "ok": "boolean", "pm_exp_month": "integer", "pm_exp_year": "integer"}


@dataclass(frozen=True)
class PlanCounts:
    created: int
    updated: int
    unchanged: int


class AccountStage:
    """One import's staging and plan tables, on one database connection."""

    def __init__(self, *, present: frozenset[str], using: str = "default") -> None:
        self.using = using
        self.connection = connections[using]
        self.vendor = self.connection.vendor
        if self.vendor not in ("postgresql", "sqlite"):
            raise NotImplementedError(f"CSV import supports PostgreSQL and SQLite, not {self.vendor}")
        # Customer columns the file carries (the key excluded): only these are compared and updated.
        self.customer_columns = [c for c in CUSTOMER_FIELDS if c in present and c != "external_id"]

    # --- Loading ------------------------------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def create(self) -> None:
        self.drop()
        columns = []
        for name in STAGE_COLUMNS:
            kind = _STAGE_TYPES.get(name, "text")
            if name == "line" and self.vendor == "sqlite":
                kind = "integer PRIMARY KEY"  # the rowid: joins on line become direct lookups
            columns.append(f"{name} {kind}")
        self._execute(f"CREATE TEMPORARY TABLE {STAGE} ({', '.join(columns)})")
        if self.vendor == "postgresql":
            # Hash joins and sorts over a whole file stay in memory; reset in drop().
            self._execute(f"SET work_mem = '{WORK_MEM}'")

    def drop(self) -> None:
        for table in (PLAN, STAGE):
            self._execute(f"DROP TABLE IF EXISTS {table}")
        if self.vendor == "postgresql":
            self._execute("RESET work_mem")

    @contextmanager
    def writer(self) -> Iterator[Callable[[list[tuple[Any, ...]]], None]]:
        """A function that appends a batch of staging rows. Use it inside this context only."""
        names = ", ".join(STAGE_COLUMNS)
        if self.vendor == "postgresql":
            with (
                transaction.atomic(using=self.using),
                self.connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN") as copy,
            ):

                def write_copy(rows: list[tuple[Any, ...]]) -> None:
                    for row in rows:
                        copy.write_row(row)

                yield write_copy
            return
        placeholders = ", ".join(["%s"] * len(STAGE_COLUMNS))
        insert = f"INSERT INTO {STAGE} ({names}) VALUES ({placeholders})"

        def write_many(rows: list[tuple[Any, ...]]) -> None:
            # One short transaction per batch: SQLite's write lock is never held across the whole file.
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                cursor.executemany(insert, rows)

        yield write_many

    # --- Checks across rows -------------------------------------------------------------------------------

    def duplicate_errors(self, *, limit: int) -> tuple[int, list[RowError]]:
        """Rows repeating an earlier row's external_id: how many, and the first ``limit`` as errors.

        Those rows are marked invalid, so they are counted once among the invalid rows.
        """
        duplicates = f"""
            SELECT s.line, s.external_id, d.first_line
            FROM {STAGE} s
            JOIN (
                SELECT external_id, MIN(line) AS first_line FROM {STAGE}
                WHERE external_id <> '' GROUP BY external_id HAVING COUNT(*) > 1
            ) d ON d.external_id = s.external_id
            WHERE s.line > d.first_line
        """
        rows = self._execute(f"{duplicates} ORDER BY s.line LIMIT %s", [max(limit, 1)])
        if not rows:
            return 0, []
        count = self._execute(f"SELECT COUNT(*) FROM ({duplicates}) dup")[0][0]
        self._execute(
            f"UPDATE {STAGE} SET ok = FALSE WHERE ok AND line IN (SELECT line FROM ({duplicates}) dup)"
        )
        errors = [
            RowError(line, "external_id", f"Appears more than once in the file (first on line {first}).", key)
            for line, key, first in rows
        ]
        return count, errors

    def erased_errors(self, *, limit: int) -> tuple[int, list[RowError]]:
        """Rows naming a customer whose personal data was erased on request: an import must not bring it
        back. How many, and the first ``limit`` as errors; those rows are marked invalid."""
        erased = f"""
            SELECT s.line, s.external_id FROM {STAGE} s
            JOIN customers_customer c ON c.external_id = s.external_id
            WHERE c.erased_at IS NOT NULL
        """
        rows = self._execute(f"{erased} ORDER BY s.line LIMIT %s", [max(limit, 1)])
        if not rows:
            return 0, []
        count = self._execute(f"SELECT COUNT(*) FROM ({erased}) er")[0][0]
        self._execute(f"UPDATE {STAGE} SET ok = FALSE WHERE ok AND line IN (SELECT line FROM ({erased}) er)")
        message = "This account's personal data was erased on request; it cannot be imported again."
        return count, [RowError(line, "external_id", message, key) for line, key in rows]

    def invalid_rows(self) -> int:
        return self._execute(f"SELECT COUNT(*) FROM {STAGE} WHERE NOT ok")[0][0]

    # --- Plan ---------------------------------------------------------------------------------------------

    def plan(self) -> PlanCounts:
        """Decide, for every valid row, what the import does. Reads the live tables, writes only ``PLAN``."""
        self._execute(f"DROP TABLE IF EXISTS {PLAN}")
        changed = " OR ".join(f"c.{name} <> s.{name}" for name in self.customer_columns)
        self._execute(
            f"""
            CREATE TEMPORARY TABLE {PLAN} AS
            WITH contact AS (
                -- The billing contact a row updates: the one with the same email, else the oldest.
                SELECT line, contact_id, contact_name, contact_email FROM (
                    SELECT s.line, ct.id AS contact_id, ct.name AS contact_name, ct.email AS contact_email,
                           ROW_NUMBER() OVER (
                               PARTITION BY s.line
                               ORDER BY CASE WHEN ct.email = s.contact_email THEN 0 ELSE 1 END, ct.id
                           ) AS pick
                    FROM {STAGE} s
                    JOIN customers_customer c ON c.external_id = s.external_id
                    JOIN customers_contact ct ON ct.customer_id = c.id AND ct.role = 'billing'
                    WHERE s.ok AND s.contact_email IS NOT NULL
                ) ranked WHERE pick = 1
            )
            SELECT q.*,
                   q.customer_id IS NULL AS is_new,
                   q.customer_id IS NOT NULL AND (
                       q.customer_changed
                       OR q.contact_action IN ('insert', 'update')
                       OR q.pm_action IN ('insert', 'update', 'replace')
                   ) AS is_updated
            FROM (
                SELECT s.line, s.external_id, c.id AS customer_id,
                       c.id IS NOT NULL AND ({changed}) AS customer_changed,
                       t.contact_id,
                       CASE WHEN s.contact_email IS NULL THEN 'none'
                            WHEN t.contact_id IS NULL THEN 'insert'
                            WHEN t.contact_email = s.contact_email AND t.contact_name = s.contact_name
                                THEN 'keep'
                            ELSE 'update' END AS contact_action,
                       pm.id AS pm_id,
                       CASE WHEN s.pm_type IS NULL THEN 'none'
                            WHEN pm.id IS NULL THEN 'insert'
                            WHEN pm.type = s.pm_type AND pm.brand = s.pm_brand AND pm.last4 = s.pm_last4 THEN
                                CASE WHEN pm.exp_month IS NOT DISTINCT FROM s.pm_exp_month
                                      AND pm.exp_year IS NOT DISTINCT FROM s.pm_exp_year
                                      AND (s.pm_funding IS NULL OR s.pm_funding = pm.funding)
                                      AND (s.pm_country IS NULL OR s.pm_country = pm.country)
                                     THEN 'keep' ELSE 'update' END
                            ELSE 'replace' END AS pm_action
                FROM {STAGE} s
                LEFT JOIN customers_customer c ON c.external_id = s.external_id
                LEFT JOIN contact t ON t.line = s.line
                LEFT JOIN customers_paymentmethod pm ON pm.customer_id = c.id AND pm.is_default
                WHERE s.ok
            ) q
            """
        )
        if self.vendor == "postgresql":
            self._execute(f"ANALYZE {PLAN}")
        created, updated, total = self._execute(
            f"""
            SELECT COALESCE(SUM(CASE WHEN is_new THEN 1 ELSE 0 END), 0),
                   COALESCE(SUM(CASE WHEN is_updated THEN 1 ELSE 0 END), 0),
                   COUNT(*)
            FROM {PLAN}
            """
        )[0]
        return PlanCounts(created=created, updated=updated, unchanged=total - created - updated)

    # --- Writes -------------------------------------------------------------------------------------------

    def lock(self) -> None:
        if self.vendor == "postgresql":
            self._execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])

    def apply(self, *, counts: PlanCounts, now: datetime, actor: Actor, run_id: str, file_name: str) -> None:
        """Write the plan. Call inside ``transaction.atomic()``, right after :meth:`lock` and :meth:`plan`."""
        if not (counts.created or counts.updated):
            return  # a re-import of the same file: nothing to write, not even audit rows
        stamp = self.connection.ops.adapt_datetimefield_value(now)
        if counts.created:
            self._insert_customers(stamp)
        if counts.updated:
            self._audit_updates(stamp=stamp, actor=actor, run_id=run_id, file_name=file_name)
            assignments = ", ".join(f"{name} = s.{name}" for name in self.customer_columns)
            self._execute(
                f"""
                UPDATE customers_customer SET {assignments}, updated_at = %s
                FROM {PLAN} p JOIN {STAGE} s ON s.line = p.line
                WHERE customers_customer.id = p.customer_id AND p.customer_changed
                """,
                [stamp],
            )
            self._execute(
                f"""
                UPDATE customers_contact SET name = s.contact_name, email = s.contact_email
                FROM {PLAN} p JOIN {STAGE} s ON s.line = p.line
                WHERE customers_contact.id = p.contact_id AND p.contact_action = 'update'
                """
            )
            # A different card or account becomes the default; the old one stays, no longer default.
            self._execute(
                f"""
                UPDATE customers_paymentmethod SET is_default = FALSE, updated_at = %s
                WHERE id IN (SELECT pm_id FROM {PLAN} WHERE pm_action = 'replace')
                """,
                [stamp],
            )
            # Same card (type, brand, last four): only its expiry moved (a renewed card), or the file tells
            # its funding or issuing country; an empty funding or country cell keeps the stored one.
            self._execute(
                f"""
                UPDATE customers_paymentmethod
                SET exp_month = s.pm_exp_month, exp_year = s.pm_exp_year,
                    funding = COALESCE(s.pm_funding, customers_paymentmethod.funding),
                    country = COALESCE(s.pm_country, customers_paymentmethod.country),
                    updated_at = %s
                FROM {PLAN} p JOIN {STAGE} s ON s.line = p.line
                WHERE customers_paymentmethod.id = p.pm_id AND p.pm_action = 'update'
                """,
                [stamp],
            )
        # New accounts got their contact and payment method with them on PostgreSQL (_insert_customers).
        only_existing = " AND NOT p.is_new" if self.vendor == "postgresql" else ""
        self._execute(
            f"""
            {CONTACT_INSERT}
            SELECT p.customer_id, 'billing', s.contact_name, s.contact_email, %s
            FROM {PLAN} p JOIN {STAGE} s ON s.line = p.line
            WHERE p.contact_action = 'insert'{only_existing}
            """,
            [stamp],
        )
        self._execute(
            f"""
            {METHOD_INSERT}
            SELECT p.customer_id, s.pm_type, s.pm_brand, s.pm_last4, s.pm_exp_month, s.pm_exp_year,
                   {NEW_METHOD_FUNDING}, {NEW_METHOD_COUNTRY}, '', TRUE, %s, %s
            FROM {PLAN} p JOIN {STAGE} s ON s.line = p.line
            WHERE p.pm_action IN ('insert', 'replace'){only_existing}
            """,
            [stamp, stamp],
        )

    def _insert_customers(self, stamp: Any) -> None:
        names = ["external_id", *(c for c in CUSTOMER_FIELDS if c != "external_id")]
        insert = f"""
            INSERT INTO customers_customer (
                {", ".join(names)}, gateway_customer_id, entitlement_state, created_at, updated_at
            )
            SELECT {", ".join(f"s.{n}" for n in names)}, '', 'active', %s, %s
            FROM {PLAN} p JOIN {STAGE} s ON s.line = p.line
            WHERE p.is_new
        """
        if self.vendor == "postgresql":
            # One statement for the new accounts, their billing contacts and payment methods: the new ids
            # flow straight from RETURNING instead of being looked up again (a tenth of the import's time).
            self._execute(
                f"""
                WITH inserted AS ({insert} RETURNING id, external_id),
                created AS (
                    SELECT i.id AS customer_id, s.*
                    FROM inserted i JOIN {STAGE} s ON s.external_id = i.external_id AND s.ok
                ),
                contacts AS (
                    {CONTACT_INSERT}
                    SELECT customer_id, 'billing', contact_name, contact_email, %s
                    FROM created WHERE contact_email IS NOT NULL
                )
                {METHOD_INSERT}
                SELECT customer_id, pm_type, pm_brand, pm_last4, pm_exp_month, pm_exp_year,
                       {NEW_METHOD_FUNDING}, {NEW_METHOD_COUNTRY}, '', TRUE, %s, %s
                FROM created WHERE pm_type IS NOT NULL
                """,
                [stamp, stamp, stamp, stamp, stamp],
            )
            return
        self._execute(insert, [stamp, stamp])
        self._execute(
            f"""
            UPDATE {PLAN} SET customer_id = c.id
            FROM customers_customer c
            WHERE {PLAN}.is_new AND c.external_id = {PLAN}.external_id
            """
        )

    def _audit_updates(self, *, stamp: Any, actor: Actor, run_id: str, file_name: str) -> None:
        """One audit row per changed account with the old and new values, written before the updates.

        New accounts have no row of their own: the import's one ``customers.imported`` event records who
        created them, when and from which file, and their ``created_at`` is that event's time exactly.
        At 100,000 new accounts a row each would cost a quarter of the import's time.
        """
        json = _Json(self.vendor)
        changes = [
            (name, f"CASE WHEN c.{name} <> s.{name} THEN {json.array(f'c.{name}', f's.{name}')} END")
            for name in self.customer_columns
        ]
        contact_old = "ct.name || ' <' || ct.email || '>'"
        contact_new = "s.contact_name || ' <' || s.contact_email || '>'"
        changes.append(
            (
                "billing_contact",
                f"CASE WHEN p.contact_action IN ('insert', 'update') "
                f"THEN {json.array(contact_old, contact_new)} END",
            )
        )
        method_old = _describe_method(
            "pm.type", "pm.brand", "pm.last4", "pm.exp_month", "pm.exp_year", "pm.funding", "pm.country"
        )
        # What the method holds after the import: an empty funding or country cell keeps the stored value
        # on the same card ('update'), and gives the defaults to a new one.
        same_card = "CASE WHEN p.pm_action = 'update' THEN pm.{} END"
        method_new = _describe_method(
            "s.pm_type",
            "s.pm_brand",
            "s.pm_last4",
            "s.pm_exp_month",
            "s.pm_exp_year",
            f"COALESCE(s.pm_funding, {same_card.format('funding')}, '{CardFunding.UNKNOWN.value}')",
            f"COALESCE(s.pm_country, {same_card.format('country')}, '')",
        )
        changes.append(
            (
                "payment_method",
                f"CASE WHEN p.pm_action IN ('insert', 'update', 'replace') "
                f"THEN {json.array(method_old, method_new)} END",
            )
        )
        base = json.object(
            [
                ("source", "'csv_import'"),
                ("import", "CAST(%s AS TEXT)"),
                ("file", "CAST(%s AS TEXT)"),
                ("line", "p.line"),
            ]
        )
        details = json.with_changes(base, changes)
        fields = actor.audit_fields()
        user = fields["actor_user"]
        self._execute(
            f"""
            INSERT INTO customers_auditevent (
                occurred_at, actor_type, actor_user_id, actor_label, action, customer_id, reason, details
            )
            SELECT %s, %s, %s, %s,
                   'customer.updated', p.customer_id, 'CSV import', {details}
            FROM {PLAN} p
            JOIN {STAGE} s ON s.line = p.line
            JOIN customers_customer c ON c.id = p.customer_id
            LEFT JOIN customers_contact ct ON ct.id = p.contact_id
            LEFT JOIN customers_paymentmethod pm ON pm.id = p.pm_id
            WHERE p.is_updated
            """,
            [stamp, fields["actor_type"], user.pk if user is not None else None, fields["actor_label"]]
            + [run_id, file_name],
        )


def _describe_method(
    kind: str, brand: str, last4: str, month: str, year: str, funding: str, country: str
) -> str:
    """SQL for "card visa 4242 12/2027 credit US": how a payment method reads in the audit log.

    Funding is left out while unknown and the issuing country while blank, so the common case stays short.
    """
    expiry = f"COALESCE(' ' || CAST({month} AS TEXT) || '/' || CAST({year} AS TEXT), '')"
    funding_part = f"CASE WHEN {funding} <> '{CardFunding.UNKNOWN.value}' THEN ' ' || {funding} ELSE '' END"
    country_part = f"CASE WHEN {country} <> '' THEN ' ' || {country} ELSE '' END"
    return f"{kind} || ' ' || {brand} || ' ' || {last4} || {expiry} || {funding_part} || {country_part}"


class _Json:
    """The little JSON building the audit rows need, in each database's dialect."""

    def __init__(self, vendor: str) -> None:
        self.postgres = vendor == "postgresql"

    def array(self, *items: str) -> str:
        return f"{'jsonb_build_array' if self.postgres else 'json_array'}({', '.join(items)})"

    def object(self, pairs: list[tuple[str, str]]) -> str:
        function = "jsonb_build_object" if self.postgres else "json_object"
        arguments = ", ".join("'" + key + "', " + value for key, value in pairs)
        return f"{function}({arguments})"

    def with_changes(self, base: str, changes: list[tuple[str, str]]) -> str:
        """``base`` plus ``{"changes": {...}}`` without the keys whose value is NULL (unchanged fields)."""
        if self.postgres:
            return f"{base} || jsonb_build_object('changes', jsonb_strip_nulls({self.object(changes)}))"
        # A JSON merge patch drops keys whose value is null.
        return f"json_patch({base}, json_object('changes', {self.object(changes)}))"
