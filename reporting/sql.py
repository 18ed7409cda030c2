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
from reporting.models import CaseFact, WeeklyRollup

CASE = DunningCase._meta.db_table
EVENT = CaseEvent._meta.db_table
ATTEMPT = PaymentAttempt._meta.db_table
NOTIFICATION = Notification._meta.db_table
CUSTOMER = Customer._meta.db_table
VERSION = PolicyVersion._meta.db_table
FACT = CaseFact._meta.db_table
ROLLUP = WeeklyRollup._meta.db_table

FACT_COLUMNS: tuple[str, ...] = tuple(field.column for field in CaseFact._meta.concrete_fields)
ROLLUP_KEY_COLUMNS: tuple[str, ...] = tuple(rollup for rollup, _fact in DIMENSIONS)
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


def fact_select(where: str) -> str:
    """One row per case matching ``where`` (over alias ``c``), in ``FACT_COLUMNS`` order.

    The first decline is the case's lowest-numbered attempt: the failure that opened it. A retry's rank is
    its position among the case's settled retries, so the first retry is rank 1 whatever number the
    attempt has (a second failure reported by the billing system is another initial charge, not a retry).
    Subqueries run per case through the (case, number) and (case_ref, status) indexes, so the cost follows
    the number of cases asked for, not the size of the tables.
    """
    recovered = f"c.state = '{CaseState.RECOVERED.value}'"
    first_attempt = f"FROM {ATTEMPT} a WHERE a.case_id = c.id ORDER BY a.number LIMIT 1"
    return f"""
        SELECT c.id, c.customer_id, c.opened_at, {week_start("c.opened_at")}, c.currency, cu.segment,
            pv.policy_id, c.policy_version_id,
            COALESCE((SELECT a.decline_category {first_attempt}), ''),
            COALESCE((SELECT a.decline_code {first_attempt}), ''),
            c.state, c.amount_minor,
            CASE WHEN {recovered} THEN COALESCE(c.recovered_amount_minor, 0) ELSE 0 END,
            CASE WHEN {recovered} THEN c.recovery_channel ELSE '' END,
            CASE WHEN {recovered} THEN c.recovered_at END,
            c.closed_at,
            CASE WHEN {recovered} THEN {seconds_between("c.opened_at", "c.recovered_at")} END,
            (SELECT COUNT(*) FROM {ATTEMPT} a
             WHERE a.case_id = c.id AND a.source <> {INITIAL} AND a.status IN {SETTLED}),
            (SELECT COUNT(*) FROM {ATTEMPT} s JOIN {ATTEMPT} a ON a.case_id = s.case_id AND a.number <= s.number
             WHERE s.case_id = c.id AND s.status = '{AttemptStatus.SUCCEEDED.value}' AND s.source <> {INITIAL}
               AND a.source <> {INITIAL} AND a.status IN {SETTLED}),
            (SELECT COUNT(DISTINCT n.message_key) FROM {NOTIFICATION} n
             WHERE n.case_ref = c.id AND n.audience = '{Audience.CUSTOMER.value}' AND n.status IN {WENT_OUT})
        FROM {CASE} c
        JOIN {CUSTOMER} cu ON cu.id = c.customer_id
        JOIN {VERSION} pv ON pv.id = c.policy_version_id
        WHERE {where}
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
