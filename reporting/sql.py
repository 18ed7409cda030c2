"""SQL shared by the refresh and the reads: the case facts query, the measures, and the few expressions
that differ between PostgreSQL and SQLite.

Identifiers and constants here all come from code (model tables, enums); values from users always travel
as query parameters.
"""

from __future__ import annotations

from datetime import date, datetime

from django.db import connection

from customers.models import Customer
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEvent,
    CaseState,
    DunningCase,
    PaymentAttempt,
    PolicyVersion,
)
from notifications.models import Audience, Notification
from notifications.selectors import WENT_OUT_STATUSES
from reporting.measures import DIMENSIONS, MEASURES
from reporting.models import CaseFact, RecoveryTime, WeeklyRollup, WeeklyTotals

CASE = DunningCase._meta.db_table
EVENT = CaseEvent._meta.db_table
ATTEMPT = PaymentAttempt._meta.db_table
NOTIFICATION = Notification._meta.db_table
CUSTOMER = Customer._meta.db_table
VERSION = PolicyVersion._meta.db_table
FACT = CaseFact._meta.db_table
RECOVERY = RecoveryTime._meta.db_table
ROLLUP = WeeklyRollup._meta.db_table
TOTALS = WeeklyTotals._meta.db_table

FACT_COLUMNS: tuple[str, ...] = tuple(field.column for field in CaseFact._meta.concrete_fields)
ROLLUP_KEY_COLUMNS: tuple[str, ...] = tuple(rollup for rollup, _fact in DIMENSIONS)
TOTALS_KEY_COLUMNS: tuple[str, ...] = ("week_start", "currency", "policy_id", "policy_version_id")
MEASURE_COLUMNS: tuple[str, ...] = tuple(MEASURES)

# A retry is any attempt after the initial charge (scheduled retries, the portal, staff, card updates); it
# counts once it has a result.
SETTLED = f"('{AttemptStatus.SUCCEEDED.value}', '{AttemptStatus.FAILED.value}')"
INITIAL = f"'{AttemptSource.INITIAL.value}'"
WENT_OUT = "(" + ", ".join(f"'{status}'" for status in WENT_OUT_STATUSES) + ")"


def vendor() -> str:
    return connection.vendor


def param(value: object) -> object:
    """A datetime or date as the database stores it. SQLite keeps naive UTC text, and its driver would
    otherwise send "+00:00" strings that compare wrongly against the stored ones."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, date):
        return connection.ops.adapt_datefield_value(value)
    return value


def week_start(column: str) -> str:
    """The Monday (UTC) of the week ``column`` falls in, as a date."""
    if vendor() == "postgresql":
        return f"CAST(date_trunc('week', {column} AT TIME ZONE 'UTC') AS date)"
    # SQLite keeps UTC text; %w is 0 on Sunday, so (w + 6) % 7 days back is the Monday.
    return f"date({column}, '-' || ((CAST(strftime('%%w', {column}) AS INTEGER) + 6) %% 7) || ' days')"


def seconds_between(start: str, end: str) -> str:
    """Whole seconds from ``start`` to ``end`` (rounded, so that float noise never crosses a day boundary)."""
    if vendor() == "postgresql":
        return f"CAST(ROUND(EXTRACT(EPOCH FROM ({end} - {start}))) AS BIGINT)"
    return f"CAST(ROUND((julianday({end}) - julianday({start})) * 86400) AS INTEGER)"


def fact_select(where: str, *, extra_columns: str = "", suffix: str = "") -> str:
    """One row per case matching ``where`` (over alias ``c``), in ``FACT_COLUMNS`` order.

    The first decline is the case's lowest-numbered attempt: the failure that opened it. A retry's rank is
    its position among the case's settled retries, so the first retry is rank 1 whatever number the
    attempt has (a second failure reported by the billing system is another initial charge, not a retry).
    Subqueries run per case through the (case, number) and (case_ref, status) indexes, so the cost follows
    the number of cases asked for, not the size of the tables. ``extra_columns`` (starting with a comma)
    and ``suffix`` (ORDER BY, LIMIT) serve the pages that show the facts live.
    """
    recovered = f"c.state = '{CaseState.RECOVERED.value}'"
    first_attempt = f"FROM {ATTEMPT} a WHERE a.case_id = c.id ORDER BY a.number LIMIT 1"
    expressions = {
        "case_id": "c.id",
        "customer_id": "c.customer_id",
        "opened_at": "c.opened_at",
        "opened_week": week_start("c.opened_at"),
        "currency": "c.currency",
        "segment": "cu.segment",
        "policy_id": "pv.policy_id",
        "policy_version_id": "c.policy_version_id",
        "first_decline_category": f"COALESCE((SELECT a.decline_category {first_attempt}), '')",
        "first_decline_code": f"COALESCE((SELECT a.decline_code {first_attempt}), '')",
        "state": "c.state",
        "amount_minor": "c.amount_minor",
        "recovered_amount_minor": f"CASE WHEN {recovered} THEN COALESCE(c.recovered_amount_minor, 0) ELSE 0 END",
        "recovery_channel": f"CASE WHEN {recovered} THEN c.recovery_channel ELSE '' END",
        "recovered_at": f"CASE WHEN {recovered} THEN c.recovered_at END",
        "closed_at": "c.closed_at",
        "recovery_seconds": f"CASE WHEN {recovered} THEN {seconds_between('c.opened_at', 'c.recovered_at')} END",
        "retries": f"""(SELECT COUNT(*) FROM {ATTEMPT} a
            WHERE a.case_id = c.id AND a.source <> {INITIAL} AND a.status IN {SETTLED})""",
        "success_rank": f"""(SELECT COUNT(*) FROM {ATTEMPT} s
            JOIN {ATTEMPT} a ON a.case_id = s.case_id AND a.number <= s.number
            WHERE s.case_id = c.id AND s.status = '{AttemptStatus.SUCCEEDED.value}' AND s.source <> {INITIAL}
              AND a.source <> {INITIAL} AND a.status IN {SETTLED})""",
        "messages_sent": f"""(SELECT COUNT(DISTINCT n.message_key) FROM {NOTIFICATION} n
            WHERE n.case_ref = c.id AND n.audience = '{Audience.CUSTOMER.value}' AND n.status IN {WENT_OUT})""",
    }
    assert tuple(expressions) == FACT_COLUMNS, "fact_select must produce CaseFact's columns, in order"
    columns = ",\n            ".join(f"{expression} AS {name}" for name, expression in expressions.items())
    return f"""
        SELECT {columns}{extra_columns}
        FROM {CASE} c
        JOIN {CUSTOMER} cu ON cu.id = c.customer_id
        JOIN {VERSION} pv ON pv.id = c.policy_version_id
        WHERE {where}
        {suffix}
    """


def measure_sums(prefix: str = "") -> str:
    """``SUM(col) AS col`` for every measure column of a rollup-shaped source."""
    return ", ".join(f"SUM({prefix}{name}) AS {name}" for name in MEASURE_COLUMNS)


def fact_measures() -> str:
    """The measure expressions over case facts ``f``, named like the rollup's columns."""
    return ", ".join(f"{expression} AS {name}" for name, expression in MEASURES.items())


def rollup_insert(where: str) -> str:
    """Aggregate the case facts matching ``where`` (alias ``f``) into rollup rows."""
    keys = ", ".join(f"f.{fact}" for _rollup, fact in DIMENSIONS)
    sums = ", ".join(f"SUM({expression})" for expression in MEASURES.values())
    return f"""
        INSERT INTO {ROLLUP} ({", ".join(ROLLUP_KEY_COLUMNS)}, {", ".join(MEASURE_COLUMNS)})
        SELECT {keys}, {sums}
        FROM {FACT} f
        WHERE {where}
        GROUP BY {keys}
    """


def hour_medians(rows_from: str) -> str:
    """Median time to recovery in whole hours, overall (version NULL) and per policy version, of the rows
    of ``rows_from`` (recovered cases, with ``policy_version_id`` and ``hours``).

    Exact on whole hours elapsed (the mean of the two middle values for an even count), and computed from
    an hour histogram rather than by sorting every recovery: one pass with a hash aggregation, then
    running totals over a few thousand buckets.
    """
    return f"""
        WITH per_version AS (
            SELECT m.policy_version_id AS version, m.hours AS hour, COUNT(*) AS n
            FROM ({rows_from}) m
            GROUP BY m.policy_version_id, m.hours
        ), histogram AS (
            SELECT version, hour, n FROM per_version
            UNION ALL
            SELECT NULL, hour, SUM(n) FROM per_version GROUP BY hour
        ), running AS (
            SELECT version, hour, SUM(n) OVER (PARTITION BY version ORDER BY hour) AS upto,
                CAST(SUM(n) OVER (PARTITION BY version) AS BIGINT) AS total
            FROM histogram
        )
        SELECT version,
            (MIN(CASE WHEN upto >= (total + 1) / 2 THEN hour END)
             + MIN(CASE WHEN upto >= (total + 2) / 2 THEN hour END)) / 2.0
        FROM running
        GROUP BY version
    """


def totals_insert(where: str) -> str:
    """Sum the weekly rollup rows matching ``where`` (alias ``r``) over segments and declines."""
    keys = ", ".join(f"r.{column}" for column in TOTALS_KEY_COLUMNS)
    return f"""
        INSERT INTO {TOTALS} ({", ".join(TOTALS_KEY_COLUMNS)}, {", ".join(MEASURE_COLUMNS)})
        SELECT {keys}, {", ".join(f"SUM(r.{name})" for name in MEASURE_COLUMNS)}
        FROM {ROLLUP} r
        WHERE {where}
        GROUP BY {keys}
    """


RECOVERY_COLUMNS = tuple(field.column for field in RecoveryTime._meta.concrete_fields)


def recovery_insert(where: str) -> str:
    """Copy the recovered cases among the case facts matching ``where`` (alias ``f``)."""
    return f"""
        INSERT INTO {RECOVERY} ({", ".join(RECOVERY_COLUMNS)})
        SELECT f.case_id, f.opened_at, f.recovery_seconds / 3600, f.currency, f.segment, f.policy_id,
            f.policy_version_id, f.first_decline_category
        FROM {FACT} f
        WHERE f.recovery_seconds IS NOT NULL AND {where}
    """
