"""What a report covers, and the SQL source that answers it from the weekly rollup and the case facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from reporting import sql
from reporting.measures import DIMENSIONS, MEASURES

DEFAULT_DAYS = 90
NO_SEGMENT = "-"  # the filter value for customers without a segment ("" means all segments)


@dataclass(frozen=True)
class ReportFilters:
    """The cohort a report describes: cases whose first failure (``opened_at``) falls on ``start`` to
    ``end`` inclusive (UTC days), narrowed by the case's currency, the policy version it started with, the
    customer's segment and the category of the case's first decline. Empty values mean "all"."""

    start: date
    end: date
    currency: str = ""
    policy_id: int | None = None
    version_id: int | None = None
    segment: str = ""
    decline_category: str = ""

    @classmethod
    def default(cls, today: date) -> ReportFilters:
        """The last 90 days, today included."""
        return cls(start=today - timedelta(days=DEFAULT_DAYS - 1), end=today)

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_before(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def query_string(self) -> str:
        """The filters as URL parameters, for links to the CSV downloads and between pages."""
        values = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "currency": self.currency,
            "policy": self.policy_id or "",
            "version": self.version_id or "",
            "segment": self.segment,
            "decline_category": self.decline_category,
        }
        return urlencode({key: value for key, value in values.items() if value not in ("", None)})

    def dimension_conditions(self, alias: str) -> tuple[str, list[object]]:
        """``AND …`` conditions on the dimension columns of a rollup or case facts row."""
        conditions: list[str] = []
        params: list[object] = []
        if self.currency:
            conditions.append(f"{alias}.currency = %s")
            params.append(self.currency)
        if self.policy_id is not None:
            conditions.append(f"{alias}.policy_id = %s")
            params.append(self.policy_id)
        if self.version_id is not None:
            conditions.append(f"{alias}.policy_version_id = %s")
            params.append(self.version_id)
        if self.segment:
            conditions.append(f"{alias}.segment = %s")
            params.append("" if self.segment == NO_SEGMENT else self.segment)
        if self.decline_category:
            conditions.append(f"{alias}.first_decline_category = %s")
            params.append(self.decline_category)
        return "".join(f" AND {condition}" for condition in conditions), params


@dataclass(frozen=True)
class RangeSplit:
    """A date range as whole weeks (read from the rollup) and the days left at either end (from the facts)."""

    first_week: date | None
    last_week: date | None
    edges: tuple[tuple[datetime, datetime], ...]


def split_range(start: date, end: date) -> RangeSplit:
    """Whole Monday-to-Sunday weeks inside ``start``..``end`` (inclusive), and the days around them."""
    first = start + timedelta(days=(7 - start.weekday()) % 7)
    after = end + timedelta(days=1)
    last = after - timedelta(days=after.weekday() + 7)
    start_at = datetime.combine(start, time.min, tzinfo=UTC)
    after_at = datetime.combine(after, time.min, tzinfo=UTC)
    if first > last:
        return RangeSplit(None, None, ((start_at, after_at),))
    edges = []
    first_at = datetime.combine(first, time.min, tzinfo=UTC)
    beyond_at = datetime.combine(last + timedelta(days=7), time.min, tzinfo=UTC)
    if start_at < first_at:
        edges.append((start_at, first_at))
    if beyond_at < after_at:
        edges.append((beyond_at, after_at))
    return RangeSplit(first, last, tuple(edges))


KEY_COLUMNS = ", ".join(rollup for rollup, _fact in DIMENSIONS)
FACT_KEYS = ", ".join(f"f.{fact} AS {rollup}" for rollup, fact in DIMENSIONS)
TOTALS_KEYS = ", ".join(
    f"r.{rollup}" if rollup in sql.TOTALS_KEY_COLUMNS else f"'' AS {rollup}" for rollup, _fact in DIMENSIONS
)


def source(filters: ReportFilters, *, by_decline: bool = False) -> tuple[str, list[object]]:
    """A rollup-shaped row source for the cohort: rollup rows of the whole weeks, plus every case fact of
    the days at either end as a row of its own. Sum its measure columns to answer any additive metric.

    The whole weeks come from the weekly totals (a few rows a week) unless the report filters on segment or
    decline, or groups by decline (``by_decline``): then from the weekly rollup, which has those columns.
    """
    split = split_range(filters.start, filters.end)
    parts: list[str] = []
    params: list[object] = []
    if split.first_week is not None:
        conditions, dimension_params = filters.dimension_conditions("r")
        if by_decline or filters.segment or filters.decline_category:
            table, columns = sql.ROLLUP, KEY_COLUMNS
        else:
            # The columns the totals do not have are never filtered or grouped on in this case.
            table, columns = sql.TOTALS, TOTALS_KEYS
        parts.append(
            f"SELECT {columns}, {', '.join(sql.MEASURE_COLUMNS)} FROM {table} r "
            f"WHERE r.week_start >= %s AND r.week_start <= %s{conditions}"
        )
        params += [sql.param(split.first_week), sql.param(split.last_week), *dimension_params]
    if split.edges:
        conditions, dimension_params = filters.dimension_conditions("f")
        ranges = " OR ".join("(f.opened_at >= %s AND f.opened_at < %s)" for _ in split.edges)
        parts.append(
            f"SELECT {FACT_KEYS}, {sql.fact_measures()} FROM {sql.FACT} f WHERE ({ranges}){conditions}"
        )
        params += [sql.param(moment) for edge in split.edges for moment in edge]
        params += dimension_params
    return " UNION ALL ".join(parts), params


def facts_in_range(filters: ReportFilters) -> tuple[str, list[object]]:
    """``WHERE`` conditions selecting the cohort's case facts (alias ``f``) directly."""
    conditions, params = filters.dimension_conditions("f")
    return (
        f"f.opened_at >= %s AND f.opened_at < %s{conditions}",
        [sql.param(filters.start_at), sql.param(filters.end_before), *params],
    )


__all__ = [
    "DEFAULT_DAYS",
    "MEASURES",
    "NO_SEGMENT",
    "RangeSplit",
    "ReportFilters",
    "facts_in_range",
    "source",
    "split_range",
]
