"""The timing model: probability that a retry succeeds at a given moment, and the choice of the best slot.

Estimation, in three steps:

1. **Base rate, shrunk and with fallback.** The category's rate is shrunk toward the built-in prior of the
   code, ``(s + k * p_prior) / (n + k)`` with ``k = BASE_PRIOR_STRENGTH`` (a beta-binomial posterior mean);
   the code's own rate is then shrunk toward that category rate. Feature levels are read from the code's
   counts when the code has at least ``CODE_MIN_ATTEMPTS`` attempts, otherwise from the whole category's
   (summed over its codes): a rare code borrows the time-of-day shape of its siblings.
2. **One estimate per feature level.** For feature ``f`` at level ``l``, the level's rate is shrunk toward
   the feature's base rate scaled by the prior odds ratio of that level (``priors.prior_multiplier``), with
   ``k = LEVEL_PRIOR_STRENGTH``. No data gives the prior; thousands of attempts give the data.
3. **Combination in log-odds** (naive Bayes): ``logit(p) = logit(base) + w * sum_f (logit(p_f,l) -
   logit(base_f))``. Naive Bayes assumes the features independent given success; they are not (weekday and
   day of month both carry the payday signal, hour and hours-since-failure overlap), and summing correlated
   evidence overstates confidence. The damping weight ``w = DAMPING < 1`` shrinks the sum; 0.6 is a
   judgement that keeps two fully redundant features at about one feature's worth of evidence.
   The result is clamped to [0.001, 0.999].

Speed: the log-odds term of a (code, category, feature, level) never changes for a built model, so terms are
memoised on the instance. ``choose_slot`` scores the case's fixed features once, the day features once per
local day and only the hour and hours-since-failure per candidate, and builds full ``Evidence`` only for the
chosen slot and the fixed slot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from operator import itemgetter

from dunning.timing.explain import explain_choice
from dunning.timing.features import (
    FEATURES,
    HOURS_SINCE_FAILURE_LATE,
    SINCE_LEVEL_BY_HOUR,
    SINCE_LEVEL_HORIZON,
    UNKNOWN,
    WEEKDAYS,
    RetryContext,
    amount_band,
    effective_payday,
    hour_level,
    level,
    payday_days_on,
    payday_level,
    retry_number_level,
    time_levels,
    zone,
)
from dunning.timing.priors import BASE_PRIOR_STRENGTH, LEVEL_PRIOR_STRENGTH, prior_base, prior_multiplier

DAMPING = 0.6
# Below this many attempts a code's feature levels come from its whole category.
CODE_MIN_ATTEMPTS = 200
P_MIN, P_MAX = 0.001, 0.999
DEFAULT_LOCAL_HOURS: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19)
RUNNER_UPS = 3
HOUR_TIE_BREAK = 0.001
# The order terms are added in, the same in ``estimate_levels`` and in ``choose_slot``'s loop (case features, day
# features, then hour and time since failure), so a slot's probability is bit-for-bit the same on both paths.
SUM_ORDER: tuple[str, ...] = (
    "retry_number",
    "funding",
    "brand",
    "amount_band",
    "segment",
    "country",
    "weekday",
    "day_of_month",
    "payday_days",
    "hour",
    "hours_since_failure",
)
JSON_VERSION = 1
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
TOTALS = ("", "")

Counts = Mapping[tuple[str, str, str], tuple[int, int]]


def logit(p: float) -> float:
    p = min(max(p, P_MIN), P_MAX)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def shrink(successes: int, attempts: int, prior: float, strength: float) -> float:
    """Beta-binomial posterior mean: the observed rate pulled toward ``prior`` by ``strength`` pseudo-attempts."""
    return (successes + strength * prior) / (attempts + strength)


def scale_odds(p: float, odds_ratio: float) -> float:
    """``p`` with its odds multiplied by ``odds_ratio``, so the result stays inside (0, 1)."""
    return p * odds_ratio / (1.0 - p + p * odds_ratio)


@dataclass(frozen=True)
class Evidence:
    feature: str
    level: str
    attempts: int
    successes: int
    p: float  # shrunk estimate for that level
    contribution: float = 0.0  # damped log-odds this level adds to the base (0 = neutral)


@dataclass(frozen=True)
class Estimate:
    p: float  # probability of success, 0..1
    attempts: int  # attempts behind the base rate used (code, or category if the code is thin)
    parts: tuple[Evidence, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "p": round(self.p, 4),
            "attempts": self.attempts,
            "parts": [
                {
                    "feature": part.feature,
                    "level": part.level,
                    "attempts": part.attempts,
                    "successes": part.successes,
                    "p": round(part.p, 4),
                    "contribution": round(part.contribution, 4),
                }
                for part in self.parts
            ],
        }


@dataclass(frozen=True, slots=True)
class _Base:
    """Everything about a (code, category) that does not depend on the feature level."""

    logit: float
    attempts: int
    source: str  # key of the counts the levels come from: the code, or the category
    from_code: bool
    prior: float
    p: float


class TimingModel:
    def __init__(
        self,
        counts: Counts,
        *,
        categories: Mapping[str, str],
        built_at: datetime | None = None,
    ) -> None:
        # counts: (code, feature, level) -> (attempts, successes); (code, "", "") -> code totals.
        self.counts: dict[tuple[str, str, str], tuple[int, int]] = {
            key: (int(value[0]), int(value[1])) for key, value in counts.items()
        }
        self.categories: dict[str, str] = dict(categories)
        self.built_at = built_at
        self._category_counts: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._feature_totals: dict[tuple[bool, str, str], tuple[int, int]] = {}
        for (code, feature, level_name), (attempts, successes) in self.counts.items():
            category = self.categories.get(code, "")
            key = (category, feature, level_name)
            seen = self._category_counts.get(key, (0, 0))
            self._category_counts[key] = (seen[0] + attempts, seen[1] + successes)
        for from_code, table in ((True, self.counts), (False, self._category_counts)):
            for (owner, feature, _level), (attempts, successes) in table.items():
                if not feature:
                    continue
                seen = self._feature_totals.get((from_code, owner, feature), (0, 0))
                self._feature_totals[(from_code, owner, feature)] = (seen[0] + attempts, seen[1] + successes)
        self._bases: dict[tuple[str, str], _Base] = {}
        self._terms: dict[tuple[str, str, str, str], tuple[float, Evidence]] = {}

    # Construction ---------------------------------------------------------------------------------------

    @classmethod
    def from_raw_counts(
        cls,
        rows: Iterable[tuple[str, str, str, object, int, int]],
        *,
        built_at: datetime | None = None,
    ) -> TimingModel:
        """Rows (code, category, feature, raw value, attempts, successes); feature "" = totals per code.
        Raw values are bucketed with ``level()``, so several raw values can add up in one level."""
        counts: dict[tuple[str, str, str], tuple[int, int]] = {}
        categories: dict[str, str] = {}
        for code, category, feature, raw, attempts, successes in rows:
            categories[code] = category or ""
            key = (code, "", "") if not feature else (code, feature, level(feature, raw))
            seen = counts.get(key, (0, 0))
            counts[key] = (seen[0] + int(attempts), seen[1] + int(successes))
        return cls(counts, categories=categories, built_at=built_at)

    @classmethod
    def empty(cls) -> TimingModel:
        """Priors only."""
        return cls({}, categories={})

    def to_json(self) -> dict[str, object]:
        return {
            "version": JSON_VERSION,
            "built_at": self.built_at.isoformat() if self.built_at else None,
            "categories": dict(sorted(self.categories.items())),
            "counts": [
                [code, feature, level_name, attempts, successes]
                for (code, feature, level_name), (attempts, successes) in sorted(self.counts.items())
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> TimingModel:
        version = data.get("version")
        if version != JSON_VERSION:
            raise ValueError(f"unsupported timing model version {version!r}")
        built_at = data.get("built_at")
        rows = data.get("counts")
        raw_categories = data.get("categories")
        if not isinstance(rows, list) or not isinstance(raw_categories, Mapping):
            raise ValueError("a timing model needs a list of counts and a mapping of categories")
        counts: dict[tuple[str, str, str], tuple[int, int]] = {}
        for code, feature, level_name, attempts, successes in rows:
            counts[(str(code), str(feature), str(level_name))] = (int(attempts), int(successes))
        categories = {str(code): str(category) for code, category in raw_categories.items()}
        return cls(
            counts,
            categories=categories,
            built_at=datetime.fromisoformat(str(built_at)) if built_at else None,
        )

    # Scoring --------------------------------------------------------------------------------------------

    def _base(self, code: str, category: str) -> _Base:
        key = (code, category)
        base = self._bases.get(key)
        if base is None:
            prior = prior_base(code, category)
            cat_attempts, cat_successes = self._category_counts.get((category, *TOTALS), (0, 0))
            category_p = shrink(cat_successes, cat_attempts, prior, BASE_PRIOR_STRENGTH)
            code_attempts, code_successes = self.counts.get((code, *TOTALS), (0, 0))
            code_p = shrink(code_successes, code_attempts, category_p, BASE_PRIOR_STRENGTH)
            from_code = code_attempts >= CODE_MIN_ATTEMPTS
            base = _Base(
                logit=logit(code_p),
                attempts=code_attempts if from_code else cat_attempts,
                source=code if from_code else category,
                from_code=from_code,
                prior=prior,
                p=code_p,
            )
            self._bases[key] = base
        return base

    def _term(self, code: str, category: str, feature: str, level_name: str) -> tuple[float, Evidence]:
        """(damped log-odds contribution, evidence) of one feature level; memoised, the model is immutable."""
        key = (code, category, feature, level_name)
        term = self._terms.get(key)
        if term is None:
            base = self._base(code, category)
            table = self.counts if base.from_code else self._category_counts
            feature_attempts, feature_successes = self._feature_totals.get(
                (base.from_code, base.source, feature), (0, 0)
            )
            feature_p = shrink(feature_successes, feature_attempts, base.p, BASE_PRIOR_STRENGTH)
            centre = scale_odds(feature_p, prior_multiplier(code, category, feature, level_name))
            attempts, successes = table.get((base.source, feature, level_name), (0, 0))
            level_p = shrink(successes, attempts, centre, LEVEL_PRIOR_STRENGTH)
            contribution = DAMPING * (logit(level_p) - logit(feature_p))
            term = (contribution, Evidence(feature, level_name, attempts, successes, level_p, contribution))
            self._terms[key] = term
        return term

    def estimate_levels(self, code: str, category: str, level_names: Mapping[str, str]) -> Estimate:
        base = self._base(code, category)
        terms = {feature: self._term(code, category, feature, level_names[feature]) for feature in FEATURES}
        total = base.logit
        for feature in SUM_ORDER:
            total += terms[feature][0]
        parts = tuple(terms[feature][1] for feature in FEATURES)
        return Estimate(p=min(max(sigmoid(total), P_MIN), P_MAX), attempts=base.attempts, parts=parts)

    def estimate(self, ctx: RetryContext, at: datetime) -> Estimate:
        level_names = self.case_levels(ctx)
        level_names.update(time_levels(ctx, at))
        return self.estimate_levels(ctx.decline_code, ctx.decline_category, level_names)

    def case_levels(self, ctx: RetryContext) -> dict[str, str]:
        """Levels of the features that do not change with the slot."""
        return {
            "retry_number": retry_number_level(ctx.retry_number),
            "funding": level("funding", ctx.funding),
            "brand": level("brand", ctx.brand),
            "amount_band": str(amount_band(ctx.amount_minor, ctx.exponent)),
            "segment": level("segment", ctx.segment),
            "country": level("country", ctx.country),
        }


@dataclass(frozen=True)
class SlotChoice:
    at: datetime  # aware UTC, on the hour (local)
    estimate: Estimate
    runner_ups: tuple[tuple[datetime, float], ...]  # next best distinct slots (other local day or hour block)
    fixed_at: datetime | None
    fixed_estimate: Estimate | None
    explanation: str = ""  # explain(ctx) at the time of the choice, so to_json needs no context

    def explain(self, ctx: RetryContext) -> str:
        return explain_choice(
            ctx,
            at=self.at,
            estimate=self.estimate,
            fixed_estimate=self.fixed_estimate,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "p": round(self.estimate.p, 4),
            "attempts": self.estimate.attempts,
            "parts": self.estimate.to_json()["parts"],
            "runner_ups": [{"at": at.isoformat(), "p": round(p, 4)} for at, p in self.runner_ups],
            "fixed_at": self.fixed_at.isoformat() if self.fixed_at else None,
            "fixed_p": round(self.fixed_estimate.p, 4) if self.fixed_estimate else None,
            "explanation": self.explanation,
        }


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


def choose_slot(
    model: TimingModel,
    ctx: RetryContext,
    *,
    window_start: datetime,
    window_end: datetime,
    not_before: datetime | None = None,
    fixed_at: datetime | None = None,
    local_hours: Sequence[int] = DEFAULT_LOCAL_HOURS,
) -> SlotChoice:
    """The best local on-the-hour slot in [window_start, window_end], at or after ``not_before``.

    Candidates are each hour of ``local_hours`` on each local day touching the window. Local times that do not
    exist (a spring-forward gap) are skipped; ambiguous ones (fall-back) take their first occurrence. When no
    candidate survives, the answer is the earliest allowed moment, ``max(window_start, not_before)`` clamped to
    ``window_end``. Ties go to the earliest slot.
    """
    for name, value in (
        ("window_start", window_start),
        ("window_end", window_end),
        ("not_before", not_before),
        ("fixed_at", fixed_at),
    ):
        _require_aware(name, value)
    if window_end < window_start:
        raise ValueError("window_end is before window_start")
    code, category = ctx.decline_code, ctx.decline_category
    tz = zone(ctx.time_zone)
    pattern = effective_payday(ctx)
    term = model._term
    case_levels = model.case_levels(ctx)
    case_logit = model._base(code, category).logit
    for feature, level_name in case_levels.items():
        case_logit += term(code, category, feature, level_name)[0]
    earliest = window_start if not_before is None or not_before < window_start else not_before
    earliest, latest = earliest.astimezone(UTC), window_end.astimezone(UTC)
    # Per-call tables: each hour's level and term, and each hours-since-failure level's term, computed once.
    # Inside the loop instants are POSIX seconds (floats): cheaper than aware datetimes, exact for whole seconds.
    hour_table = []
    # Ties (no evidence, no prior between two hours) go to the hour nearest the fixed slot's, not the
    # earliest: without evidence a smart step keeps the hour its policy chose. The nudge (a thousandth of
    # a log-odds unit per hour) never outweighs a real difference.
    preferred = fixed_at.astimezone(tz).hour if fixed_at is not None else None
    for hour in sorted({hour for hour in local_hours if 0 <= hour < 24}):
        block = hour_level(hour)
        nudge = -HOUR_TIE_BREAK * abs(hour - preferred) if preferred is not None else 0.0
        hour_table.append((hour, block, term(code, category, "hour", block)[0] + nudge, hour * 3600))
    since_terms: dict[str, float] = {}
    earliest_ts, latest_ts, failure_ts = (
        earliest.timestamp(),
        latest.timestamp(),
        ctx.last_failure_at.timestamp(),
    )

    # (POSIX seconds, score, (local day, weekday, day-of-month and payday levels), hour block, since level),
    # appended in chronological order: days ascend, hours ascend within a day, and an ambiguous local hour takes
    # its first occurrence, so local order is UTC order.
    candidates: list[tuple[float, float, tuple[date, str, str, str], str, str]] = []
    day = window_start.astimezone(tz).date()
    last_day = window_end.astimezone(tz).date()
    one_day = timedelta(days=1)
    next_offset = datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
    while day <= last_day:
        weekday_level = WEEKDAYS[day.weekday()]
        day_level = str(day.day)
        payday = payday_level(payday_days_on(pattern, day))
        day_record = (day, weekday_level, day_level, payday)
        day_logit = (
            case_logit
            + term(code, category, "weekday", weekday_level)[0]
            + term(code, category, "day_of_month", day_level)[0]
            + term(code, category, "payday_days", payday)[0]
        )
        # When the offset is the same at both local midnights, no clock change happens in between and every
        # hour is the local midnight plus the hour; otherwise each hour goes through zoneinfo. Each midnight's
        # offset is looked up once and reused as the previous day's "next midnight".
        next_day = day + one_day
        offset = next_offset
        next_offset = datetime(next_day.year, next_day.month, next_day.day, tzinfo=tz).utcoffset()
        if offset == next_offset and offset is not None:
            midnight_ts: float | None = (day.toordinal() - EPOCH_ORDINAL) * 86_400 - offset.total_seconds()
        else:
            midnight_ts = None
        for hour, block, hour_term, hour_seconds in hour_table:
            if midnight_ts is not None:
                ts = midnight_ts + hour_seconds
            else:
                local = datetime(day.year, day.month, day.day, hour, tzinfo=tz)
                if local.astimezone(UTC).astimezone(tz).hour != hour:
                    continue  # a wall-clock hour skipped by a DST change
                ts = local.timestamp()
            if ts < earliest_ts or ts > latest_ts:
                continue
            elapsed = ts - failure_ts
            if elapsed < 0:
                since = UNKNOWN
            elif elapsed < SINCE_LEVEL_HORIZON:
                since = SINCE_LEVEL_BY_HOUR[int(elapsed // 3600)]
            else:
                since = HOURS_SINCE_FAILURE_LATE
            since_term = since_terms.get(since)
            if since_term is None:
                since_term = since_terms[since] = term(code, category, "hours_since_failure", since)[0]
            score = day_logit + hour_term + since_term
            candidates.append((ts, score, day_record, block, since))
        day = next_day

    if not candidates:
        at = min(earliest, latest)
        return _choice(model, ctx, at, model.estimate(ctx, at), (), fixed_at)
    # Python's sort is stable, also in reverse: equal scores keep chronological order, so ties go to the earliest.
    ranked = sorted(candidates, key=itemgetter(1), reverse=True)
    best = ranked[0]
    runner_ups: list[tuple[datetime, float]] = []
    taken = {(best[2][0], best[3])}
    for ts, score, record, block, _since in ranked[1:]:
        if len(runner_ups) == RUNNER_UPS:
            break
        if (record[0], block) in taken:
            continue
        taken.add((record[0], block))
        runner_ups.append((datetime.fromtimestamp(ts, UTC), min(max(sigmoid(score), P_MIN), P_MAX)))
    (
        _day,
        weekday_level,
        day_level,
        payday,
    ) = best[2]
    level_names = {
        "weekday": weekday_level,
        "hour": best[3],
        "day_of_month": day_level,
        "payday_days": payday,
        "hours_since_failure": best[4],
        **case_levels,
    }
    estimate = model.estimate_levels(code, category, level_names)
    at = datetime.fromtimestamp(best[0], UTC)
    return _choice(model, ctx, at, estimate, tuple(runner_ups), fixed_at)


def _choice(
    model: TimingModel,
    ctx: RetryContext,
    at: datetime,
    estimate: Estimate,
    runner_ups: tuple[tuple[datetime, float], ...],
    fixed_at: datetime | None,
) -> SlotChoice:
    fixed_estimate = model.estimate(ctx, fixed_at) if fixed_at is not None else None
    explanation = explain_choice(ctx, at=at, estimate=estimate, fixed_estimate=fixed_estimate)
    return SlotChoice(
        at=at,
        estimate=estimate,
        runner_ups=runner_ups,
        fixed_at=fixed_at,
        fixed_estimate=fixed_estimate,
        explanation=explanation,
    )


def _ceil_to_local_hour(moment: datetime, time_zone: str) -> datetime:
    """The next local on-the-hour instant at or after ``moment``. For any slot on a local hour, whole hours since
    this instant equal whole hours since ``moment``, so the cache key loses nothing for the candidates."""
    local = moment.astimezone(zone(time_zone))
    floored = local.replace(minute=0, second=0, microsecond=0)
    if floored != local:
        floored += timedelta(hours=1)
    return floored.astimezone(UTC)


@lru_cache(maxsize=65536)
def _choose_slot_memo(
    model: TimingModel,
    ctx: RetryContext,
    window_start: datetime,
    window_end: datetime,
    not_before: datetime | None,
    fixed_at: datetime | None,
    local_hours: tuple[int, ...],
) -> SlotChoice:
    return choose_slot(
        model,
        ctx,
        window_start=window_start,
        window_end=window_end,
        not_before=not_before,
        fixed_at=fixed_at,
        local_hours=local_hours,
    )


def choose_slot_cached(
    model: TimingModel,
    ctx: RetryContext,
    *,
    window_start: datetime,
    window_end: datetime,
    not_before: datetime | None = None,
    fixed_at: datetime | None = None,
    local_hours: Sequence[int] = DEFAULT_LOCAL_HOURS,
) -> SlotChoice:
    """``choose_slot`` memoised on (model identity, context, window, spacing, fixed slot, hours).

    ``last_failure_at`` is rounded up to the local hour for the key, which is exact for the on-the-hour
    candidates; only the fallback moment and the fixed slot's estimate can move across an hours-since-failure
    boundary (6 h, 24 h, 3 d, 7 d) by under an hour. Cases that share a decline, card, amount band, segment,
    country, zone and failure hour share an answer. Build a new ``TimingModel`` to invalidate (the key holds
    the model's identity); ``clear_slot_cache()`` frees the memory of old models.
    """
    key_ctx = replace(ctx, last_failure_at=_ceil_to_local_hour(ctx.last_failure_at, ctx.time_zone))
    return _choose_slot_memo(
        model, key_ctx, window_start, window_end, not_before, fixed_at, tuple(local_hours)
    )


def clear_slot_cache() -> None:
    _choose_slot_memo.cache_clear()
