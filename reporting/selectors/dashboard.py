"""The dashboard's figures: a fixed handful of aggregate queries, whatever the size of the data.

Additive metrics sum the measure columns of ``filters.source`` (weekly rollup rows for whole weeks, case
facts for the days at either end). Medians and involuntary churn are not additive, and read the case facts
through their own indexes. Python only arranges the aggregated rows for display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import connection

from customers.models import Customer, EntitlementState
from dunning.models import DunningPolicy, PolicyVersion
from reporting import sql
from reporting.measures import CHANNELS, CHURN_STATES, RETRY_RANKS, TIME_TO_RECOVERY_BUCKETS
from reporting.selectors.filters import NO_SEGMENT, ReportFilters, facts_in_range, source


def ratio(part: int, whole: int) -> float | None:
    """A share in percent with one decimal, or None when there is nothing to divide by."""
    return round(100 * part / whole, 1) if whole else None


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


@dataclass(frozen=True)
class CurrencyFigures:
    """The cohort's money in one currency (amounts are never added across currencies)."""

    currency: str
    cases: int
    failed_minor: int
    recovered: int
    recovered_minor: int
    at_risk: int
    at_risk_minor: int
    channel_minor: dict[str, int] = field(default_factory=dict)

    @property
    def recovery_rate_by_value(self) -> float | None:
        return ratio(self.recovered_minor, self.failed_minor)


@dataclass(frozen=True)
class Churn:
    customers_lost: int
    active_customers: int

    @property
    def rate(self) -> float | None:
        return ratio(self.customers_lost, self.active_customers)


@dataclass(frozen=True)
class Headline:
    cases: int
    recovered: int
    at_risk: int
    median_hours: float | None
    by_currency: list[CurrencyFigures]
    churn: Churn

    @property
    def recovery_rate(self) -> float | None:
        return ratio(self.recovered, self.cases)

    @property
    def median_days(self) -> float | None:
        return None if self.median_hours is None else round(self.median_hours / 24, 1)


@dataclass(frozen=True)
class WeekRow:
    week_start: date
    failed: int
    recovered: int
    at_risk: int
    # currency -> (failed, recovered, at risk) in minor units
    by_currency: dict[str, tuple[int, int, int]]


@dataclass(frozen=True)
class RetryRow:
    label: str
    attempts: int
    succeeded: int

    @property
    def success_rate(self) -> float | None:
        return ratio(self.succeeded, self.attempts)


@dataclass(frozen=True)
class CountRow:
    """A labelled count among the recovered cases: a channel or a time-to-recovery bucket."""

    key: str
    label: str
    recovered: int


@dataclass(frozen=True)
class DeclineRow:
    category: str
    code: str
    cases: int
    recovered: int

    @property
    def recovery_rate(self) -> float | None:
        return ratio(self.recovered, self.cases)


@dataclass(frozen=True)
class PolicyRow:
    version_id: int
    policy: str
    version: int
    cases: int
    recovered: int
    messages_sent: int
    median_hours: float | None

    @property
    def recovery_rate(self) -> float | None:
        return ratio(self.recovered, self.cases)

    @property
    def median_days(self) -> float | None:
        return None if self.median_hours is None else round(self.median_hours / 24, 1)

    @property
    def messages_per_recovery(self) -> float | None:
        return round(self.messages_sent / self.recovered, 1) if self.recovered else None


@dataclass(frozen=True)
class DashboardData:
    filters: ReportFilters
    headline: Headline
    weeks: list[WeekRow]
    retries: list[RetryRow]
    channels: list[CountRow]
    time_to_recovery: list[CountRow]
    declines: list[DeclineRow]
    policies: list[PolicyRow]

    @property
    def currencies(self) -> list[str]:
        return [figures.currency for figures in self.headline.by_currency]


def _fetch(query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, list(params))
        return cursor.fetchall()


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


CURRENCY_MEASURES = (
    "cases",
    "failed_amount_minor",
    "recovered",
    "recovered_amount_minor",
    "at_risk",
    "at_risk_amount_minor",
    *(f"channel_{channel}_amount_minor" for channel, _label in CHANNELS),
)


def _by_currency(rows_from: str, params: list[object]) -> list[CurrencyFigures]:
    sums = ", ".join(f"SUM({name})" for name in CURRENCY_MEASURES)
    rows = _fetch(f"SELECT currency, {sums} FROM ({rows_from}) s GROUP BY currency ORDER BY currency", params)
    figures = []
    for currency, *values in rows:
        channel_amounts = values[6:]
        figures.append(
            CurrencyFigures(
                currency,
                *(int(value) for value in values[:6]),
                channel_minor={
                    channel: int(amount)
                    for (channel, _label), amount in zip(CHANNELS, channel_amounts, strict=True)
                },
            )
        )
    return figures


def _totals(rows_from: str, params: list[object]) -> dict[str, int]:
    """Every measure summed over the cohort. Only counts are read from it: money stays per currency."""
    row = _fetch(f"SELECT {sql.measure_sums()} FROM ({rows_from}) s", params)[0]
    return {name: int(value or 0) for name, value in zip(sql.MEASURE_COLUMNS, row, strict=True)}


def _weeks(filters: ReportFilters, rows_from: str, params: list[object]) -> list[WeekRow]:
    rows = _fetch(
        f"""
        SELECT week_start, currency, SUM(failed_amount_minor), SUM(recovered_amount_minor),
            SUM(at_risk_amount_minor), SUM(SUM(cases)) OVER w, SUM(SUM(recovered)) OVER w,
            SUM(SUM(at_risk)) OVER w
        FROM ({rows_from}) s
        GROUP BY week_start, currency
        WINDOW w AS (PARTITION BY week_start)
        ORDER BY week_start, currency
        """,
        params,
    )
    found: dict[date, WeekRow] = {}
    for week, currency, failed_minor, recovered_minor, at_risk_minor, failed, recovered, at_risk in rows:
        week = _as_date(week)
        row = found.setdefault(week, WeekRow(week, int(failed), int(recovered), int(at_risk), {}))
        row.by_currency[currency] = (int(failed_minor), int(recovered_minor), int(at_risk_minor))
    # Every week of the range, those without failures too, so that the trend has no holes.
    first = filters.start - timedelta(days=filters.start.weekday())
    weeks = []
    week = first
    while week <= filters.end:
        weeks.append(found.get(week) or WeekRow(week, 0, 0, 0, {}))
        week += timedelta(days=7)
    return weeks


def _retries(totals: dict[str, int]) -> list[RetryRow]:
    rows = [
        RetryRow(
            f"{ordinal(rank)} retry", totals[f"retry_attempts_{rank}"], totals[f"retry_succeeded_{rank}"]
        )
        for rank in range(1, RETRY_RANKS + 1)
    ]
    rows.append(
        RetryRow(
            f"{ordinal(RETRY_RANKS + 1)} and later",
            totals["retry_attempts_over"],
            totals["retry_succeeded_over"],
        )
    )
    return [row for row in rows if row.attempts]


def _declines(rows_from: str, params: list[object]) -> list[DeclineRow]:
    rows = _fetch(
        f"""
        SELECT first_decline_category, first_decline_code, SUM(cases), SUM(recovered)
        FROM ({rows_from}) s
        GROUP BY first_decline_category, first_decline_code
        ORDER BY SUM(cases) DESC, first_decline_category, first_decline_code
        """,
        params,
    )
    return [
        DeclineRow(category, code, int(cases), int(recovered)) for category, code, cases, recovered in rows
    ]


def _medians(filters: ReportFilters) -> dict[int | None, float]:
    """Median hours to recovery, overall (key None) and per policy version (see ``sql.hour_medians``)."""
    where, params = facts_in_range(filters)
    rows_from = f"SELECT f.policy_version_id, f.hours FROM {sql.RECOVERY} f WHERE {where}"
    return {version: float(median) for version, median in _fetch(sql.hour_medians(rows_from), params)}


def _policies(rows_from: str, params: list[object], medians: dict[int | None, float]) -> list[PolicyRow]:
    rows = _fetch(
        f"""
        SELECT s.policy_version_id, p.name, v.number, SUM(s.cases), SUM(s.recovered), SUM(s.messages_sent)
        FROM ({rows_from}) s
        JOIN {PolicyVersion._meta.db_table} v ON v.id = s.policy_version_id
        JOIN {DunningPolicy._meta.db_table} p ON p.id = v.policy_id
        GROUP BY s.policy_version_id, p.name, v.number
        ORDER BY p.name, v.number
        """,
        params,
    )
    return [
        PolicyRow(
            version_id, name, number, int(cases), int(recovered), int(messages), medians.get(version_id)
        )
        for version_id, name, number, cases, recovered, messages in rows
    ]


def _churn(filters: ReportFilters) -> Churn:
    """Customers with a case that ended exhausted or cancelled during the period, and the customers whose
    access is not cancelled now (the segment and currency filters apply to them; the policy and decline
    filters describe cases, so they cannot)."""
    conditions, dimension_params = filters.dimension_conditions("f")
    states = ", ".join(["%s"] * len(CHURN_STATES))
    customer_conditions = ""
    customer_params: list[object] = []
    if filters.currency:
        customer_conditions += " AND cu.currency = %s"
        customer_params.append(filters.currency)
    if filters.segment:
        customer_conditions += " AND cu.segment = %s"
        customer_params.append("" if filters.segment == NO_SEGMENT else filters.segment)
    row = _fetch(
        f"""
        SELECT
            (SELECT COUNT(DISTINCT f.customer_id) FROM {sql.FACT} f
             WHERE f.state IN ({states}) AND f.closed_at >= %s AND f.closed_at < %s{conditions}),
            (SELECT COUNT(*) FROM {Customer._meta.db_table} cu
             WHERE cu.entitlement_state <> %s{customer_conditions})
        """,
        [
            *CHURN_STATES,
            sql.param(filters.start_at),
            sql.param(filters.end_before),
            *dimension_params,
            EntitlementState.CANCELLED.value,
            *customer_params,
        ],
    )[0]
    return Churn(customers_lost=int(row[0]), active_customers=int(row[1]))


def dashboard(*, filters: ReportFilters) -> DashboardData:
    """Every figure of the dashboard, in seven queries whatever the number of cases."""
    rows_from, params = source(filters)
    by_currency = _by_currency(rows_from, params)
    totals = _totals(rows_from, params)
    medians = _medians(filters)
    headline = Headline(
        cases=totals["cases"],
        recovered=totals["recovered"],
        at_risk=totals["at_risk"],
        median_hours=medians.get(None),
        by_currency=by_currency,
        churn=_churn(filters),
    )
    return DashboardData(
        filters=filters,
        headline=headline,
        weeks=_weeks(filters, rows_from, params),
        retries=_retries(totals),
        channels=[CountRow(channel, label, totals[f"channel_{channel}"]) for channel, label in CHANNELS],
        time_to_recovery=[
            CountRow(bucket.key, bucket.label, totals[f"ttr_{bucket.key}"])
            for bucket in TIME_TO_RECOVERY_BUCKETS
        ],
        declines=_declines(*source(filters, by_decline=True)),
        policies=_policies(rows_from, params, medians),
    )
