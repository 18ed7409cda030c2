"""Retry timing calibration: does the timing model's predicted success match what happened, and do smart
retries recover more than fixed ones?

Reads settled tick retries only: ``source = retry``, processed by the processor, and succeeded, failed or
duplicate (a duplicate is money that moved, so a success of the retry itself). Three queries whatever the
number of attempts, each grouped in SQL: the deciles, the smart/fixed totals, and a bounded sample of
per-retry values for the bootstrap. The statistics themselves are in :mod:`reporting.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection

from dunning.models import AttemptSource, AttemptStatus
from reporting import sql
from reporting.stats import Interval, bootstrap_mean_interval, newcombe_difference, wilson_interval

DEFAULT_DAYS = 90
DECILES = 10
TIMING_MODES: tuple[str, ...] = ("smart", "fixed")
# Below this many settled retries on either side, the page states no winner whatever the interval says:
# a small sample's interval is itself unreliable, and early results invite premature switching.
MIN_RETRIES_TO_COMPARE = 100
# The bootstrap costs rows × resamples random draws in Python (about 0.1 µs each); these keep it under half
# a second. The rows are shared out between the page's (mode, currency) groups, each sampled
# deterministically; a sampled group's interval is rescaled to its full count.
BOOTSTRAP_ROWS = 10_000
BOOTSTRAP_RESAMPLES = 500
BOOTSTRAP_SEED = 13

_SUCCESS = f"('{AttemptStatus.SUCCEEDED.value}', '{AttemptStatus.DUPLICATE.value}')"
_SETTLED = (
    f"('{AttemptStatus.SUCCEEDED.value}', '{AttemptStatus.FAILED.value}', '{AttemptStatus.DUPLICATE.value}')"
)
_IS_SUCCESS = f"CASE WHEN a.status IN {_SUCCESS} THEN 1 ELSE 0 END"


@dataclass(frozen=True)
class RetryTimingFilters:
    """Settled tick retries created from ``since`` to ``until`` inclusive (UTC days), in ``currency`` if
    given (empty: all currencies)."""

    since: date
    until: date
    currency: str = ""

    @classmethod
    def default(cls, today: date) -> RetryTimingFilters:
        return cls(since=today - timedelta(days=DEFAULT_DAYS - 1), until=today)

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.since, time.min, tzinfo=UTC)

    @property
    def end_before(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=UTC)

    def where(self) -> tuple[str, list[object]]:
        """The WHERE clause (on alias ``a``) that selects the settled tick retries of the filters."""
        conditions = [
            "a.source = %s",
            "a.processed = %s",
            f"a.status IN {_SETTLED}",
            "a.created_at >= %s",
            "a.created_at < %s",
        ]
        params: list[object] = [
            AttemptSource.RETRY.value,
            True,
            sql.param(self.start_at),
            sql.param(self.end_before),
        ]
        if self.currency:
            conditions.append("a.currency = %s")
            params.append(self.currency)
        return "WHERE " + " AND ".join(conditions), params


@dataclass(frozen=True)
class Decile:
    """One tenth of the retries with a prediction, ranked by predicted success."""

    decile: int
    retries: int
    successes: int
    mean_predicted: float
    min_predicted: float
    max_predicted: float
    actual: Interval  # the observed success share with its Wilson 95 % interval


@dataclass(frozen=True)
class CurrencyValue:
    """A timing mode's money in one currency: what its retries brought back."""

    currency: str
    retries: int
    successes: int
    recovered_minor: int
    # Mean of (amount if it succeeded, else 0) per retry, with a bootstrap 95 % interval, in minor units.
    value_per_retry: Interval | None
    # The retries the bootstrap resampled: all of them, or a deterministic sample whose interval is rescaled
    # to the full count (see reporting.stats.bootstrap_mean_interval).
    sampled: int


@dataclass(frozen=True)
class ModeSummary:
    mode: str
    retries: int = 0
    successes: int = 0
    share: Interval | None = None
    currencies: list[CurrencyValue] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """Smart − fixed success share, and what may be said about it in plain words."""

    difference: Interval | None
    conclusive: bool
    verdict: str


@dataclass(frozen=True)
class RetryTimingReport:
    filters: RetryTimingFilters
    deciles: list[Decile]
    modes: list[ModeSummary]
    comparison: Comparison
    bootstrap_rows: int = BOOTSTRAP_ROWS
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES

    @property
    def predicted_retries(self) -> int:
        return sum(decile.retries for decile in self.deciles)

    @property
    def calibration_error(self) -> float | None:
        """The retries-weighted mean gap between predicted and actual success over the deciles (the
        "expected calibration error"): 0 for a perfectly calibrated model."""
        total = self.predicted_retries
        if not total:
            return None
        return sum(d.retries * abs(d.mean_predicted - d.actual.estimate) for d in self.deciles) / total

    @property
    def sampled(self) -> bool:
        return any(value.sampled < value.retries for mode in self.modes for value in mode.currencies)

    def chart(self) -> dict[str, object]:
        """The calibration chart's data, for ``json_script``: one point per decile, and the diagonal."""
        return {
            "points": [
                {
                    "x": round(d.mean_predicted, 4),
                    "y": round(d.actual.estimate, 4),
                    "low": round(d.actual.low, 4),
                    "high": round(d.actual.high, 4),
                    "decile": d.decile,
                    "retries": d.retries,
                }
                for d in self.deciles
            ],
        }


def _deciles(filters: RetryTimingFilters) -> list[Decile]:
    where, params = filters.where()
    # NTILE in a subquery, GROUP BY outside: the database ranks and counts, Python gets at most ten rows.
    # The id breaks ties between equal predictions, so that the split is the same on every load.
    query = (
        "SELECT decile, COUNT(*), SUM(success), AVG(predicted), MIN(predicted), MAX(predicted) FROM ("
        f"  SELECT NTILE({DECILES}) OVER (ORDER BY a.predicted_success, a.id) AS decile,"
        f"         a.predicted_success AS predicted, {_IS_SUCCESS} AS success"
        f"  FROM {sql.ATTEMPT} a {where} AND a.predicted_success IS NOT NULL"
        ") ranked GROUP BY decile ORDER BY decile"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    deciles = []
    for decile, retries, successes, mean, low, high in rows:
        actual = wilson_interval(int(successes), int(retries))
        assert actual is not None  # a group has at least one row
        deciles.append(
            Decile(int(decile), int(retries), int(successes), float(mean), float(low), float(high), actual)
        )
    return deciles


def _mode_totals(filters: RetryTimingFilters) -> list[tuple[str, str, int, int, int]]:
    """(mode, currency, retries, successes, recovered minor units) for fixed and smart retries."""
    where, params = filters.where()
    modes = ", ".join("%s" for _ in TIMING_MODES)
    query = (
        f"SELECT a.timing_mode, a.currency, COUNT(*), SUM({_IS_SUCCESS}),"
        f"       SUM(CASE WHEN a.status IN {_SUCCESS} THEN a.amount_minor ELSE 0 END)"
        f" FROM {sql.ATTEMPT} a {where} AND a.timing_mode IN ({modes})"
        " GROUP BY a.timing_mode, a.currency ORDER BY a.timing_mode, a.currency"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [*params, *TIMING_MODES])
        return [(mode, currency, int(n), int(s), int(v)) for mode, currency, n, s, v in cursor.fetchall()]


def _value_samples(filters: RetryTimingFilters, *, per_group: int) -> dict[tuple[str, str], list[int]]:
    """Per (mode, currency), the value of each of at most ``per_group`` retries: the amount if it succeeded,
    else 0. A deterministic spread over the period (ids scrambled by a multiplicative hash), not the newest
    rows, and returned grouped by value so that few rows cross the wire when amounts repeat."""
    where, params = filters.where()
    modes = ", ".join("%s" for _ in TIMING_MODES)
    query = (
        "SELECT timing_mode, currency, value, COUNT(*) FROM ("
        "  SELECT a.timing_mode AS timing_mode, a.currency AS currency,"
        f"        CASE WHEN a.status IN {_SUCCESS} THEN a.amount_minor ELSE 0 END AS value,"
        "         ROW_NUMBER() OVER (PARTITION BY a.timing_mode, a.currency"
        "                            ORDER BY (a.id * 7919) %% 1000003, a.id) AS position"
        f"  FROM {sql.ATTEMPT} a {where} AND a.timing_mode IN ({modes})"
        ") sampled WHERE position <= %s GROUP BY timing_mode, currency, value"
    )
    samples: dict[tuple[str, str], list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(query, [*params, *TIMING_MODES, per_group])
        for mode, currency, value, count in cursor.fetchall():
            samples.setdefault((mode, currency), []).extend([int(value)] * int(count))
    return samples


def _modes(filters: RetryTimingFilters) -> list[ModeSummary]:
    totals = _mode_totals(filters)
    samples = _value_samples(filters, per_group=max(1, BOOTSTRAP_ROWS // len(totals))) if totals else {}
    summaries = []
    for mode in TIMING_MODES:
        rows = [row for row in totals if row[0] == mode]
        retries = sum(row[2] for row in rows)
        successes = sum(row[3] for row in rows)
        currencies = []
        for _mode, currency, n, s, recovered in rows:
            values = sorted(samples.get((mode, currency), []))  # sorted: the same list on both databases
            currencies.append(
                CurrencyValue(
                    currency=currency,
                    retries=n,
                    successes=s,
                    recovered_minor=recovered,
                    # The exact mean from the totals; the sample only shapes the interval around it.
                    value_per_retry=bootstrap_mean_interval(
                        values,
                        seed=BOOTSTRAP_SEED,
                        resamples=BOOTSTRAP_RESAMPLES,
                        full_size=n,
                        full_mean=recovered / n,
                    ),
                    sampled=len(values),
                )
            )
        summaries.append(
            ModeSummary(mode, retries, successes, wilson_interval(successes, retries), currencies)
        )
    return summaries


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def compare_modes(*, smart: ModeSummary, fixed: ModeSummary) -> Comparison:
    """Smart − fixed success share with Newcombe's interval, and a verdict that refuses to name a winner
    on small samples or when the interval includes zero."""
    difference = newcombe_difference(smart.successes, smart.retries, fixed.successes, fixed.retries)
    if smart.retries < MIN_RETRIES_TO_COMPARE or fixed.retries < MIN_RETRIES_TO_COMPARE:
        return Comparison(
            difference,
            False,
            f"Too early to compare: {smart.retries} smart and {fixed.retries} fixed settled retries; each "
            f"side needs at least {MIN_RETRIES_TO_COMPARE} before this page draws a conclusion.",
        )
    assert difference is not None  # both sides have retries
    interval = f"95 % interval {_points(difference.low)} to {_points(difference.high)} points"
    if difference.contains(0.0):
        return Comparison(
            difference,
            False,
            f"No clear difference: smart retries succeeded {_points(difference.estimate)} points against "
            f"fixed ones, but the {interval} includes zero, so this could be chance.",
        )
    better = "more" if difference.estimate > 0 else "less"
    return Comparison(
        difference,
        True,
        f"Smart retries succeed {better} often than fixed ones: {_points(difference.estimate)} points "
        f"({interval}).",
    )


def retry_timing_report(*, filters: RetryTimingFilters) -> RetryTimingReport:
    """The whole page: three grouped queries (two when no retry has a timing mode)."""
    deciles = _deciles(filters)
    modes = _modes(filters)
    by_mode = {summary.mode: summary for summary in modes}
    return RetryTimingReport(
        filters=filters,
        deciles=deciles,
        modes=modes,
        comparison=compare_modes(smart=by_mode["smart"], fixed=by_mode["fixed"]),
    )
