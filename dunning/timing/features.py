"""Features of a retry moment, and the one bucketing function that turns them into model levels.

The same ``level()`` buckets the raw values stored on past attempts (when the model is learnt) and the values
computed for a candidate slot (when it is scored), so training and scoring can never disagree on a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dunning.timing.payday import PaydayPattern, default_payday

FEATURES: tuple[str, ...] = (
    "weekday",
    "hour",
    "day_of_month",
    "payday_days",
    "hours_since_failure",
    "retry_number",
    "funding",
    "brand",
    "amount_band",
    "segment",
    "country",
)
# Features that change with the candidate slot; the others are fixed for a case and scored once per call.
TIME_FEATURES: tuple[str, ...] = ("weekday", "hour", "day_of_month", "payday_days", "hours_since_failure")
CASE_FEATURES: tuple[str, ...] = tuple(feature for feature in FEATURES if feature not in TIME_FEATURES)

UNKNOWN = "unknown"
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FUNDING_TYPES: frozenset[str] = frozenset({"credit", "debit", "prepaid"})

# Three-hour blocks: fine enough for "business morning" vs "evening", coarse enough to gather evidence.
HOUR_BLOCKS: tuple[str, ...] = tuple(
    f"{start:02d}-{start + 3:02d}" for start in range(0, 24, 3) for _ in range(3)
)
# Payday distance: the payday itself and the two days after matter most; later the money is spent.
PAYDAY_LEVELS: tuple[str, ...] = ("0", "1", "2", "3-6", "3-6", "3-6", "3-6") + ("7-13",) * 7
PAYDAY_LATE = "14+"
# Bounds (exclusive, in hours) of the time-since-failure levels, from "within hours" to "a week or more".
HOURS_SINCE_FAILURE_LEVELS: tuple[tuple[int, str], ...] = (
    (6, "<6h"),
    (24, "6-24h"),
    (72, "1-3d"),
    (168, "3-7d"),
)
HOURS_SINCE_FAILURE_LATE = "7d+"
# Major-unit upper bounds of amount bands 0..4; band 5 is everything above.
AMOUNT_BAND_BOUNDS: tuple[int, ...] = (10, 50, 200, 1000, 5000)
TIME_ZONE_FALLBACK = "UTC"


@dataclass(frozen=True, slots=True)
class RawFeatures:
    """What is stored on an attempt when it is charged, and what is computed for a candidate slot."""

    weekday: int  # 0=Monday..6, local to the customer's time zone
    hour: int  # 0..23 local
    day_of_month: int  # 1..31 local
    payday_days: int | None  # whole days since the most recent payday (0 = payday), None = no pattern known
    hours_since_failure: int | None  # whole hours since the failure being retried
    retry_number: int  # 1 = first retry
    funding: str  # "credit" | "debit" | "prepaid" | "unknown"
    brand: str  # "visa", "mastercard", ... or ""
    amount_band: int  # 0..5, see amount_band()
    segment: str
    country: str  # ISO 3166 alpha-2 upper-case or ""


@dataclass(frozen=True, slots=True)
class RetryContext:
    """What is known about a case when its next retry is planned."""

    decline_code: str  # normalised code of the decline being retried, e.g. "insufficient_funds"
    decline_category: str  # "soft" | "processing" | "hard" | "fraud" | "authentication_required"
    retry_number: int
    funding: str
    brand: str
    amount_minor: int
    exponent: int
    segment: str
    country: str
    time_zone: str  # IANA name
    last_failure_at: datetime  # aware UTC
    payday: PaydayPattern | None  # the customer's detected pattern, else None (a country default may apply)


def amount_band(amount_minor: int, exponent: int) -> int:
    """Band 0..5 of the amount in major units: <10, <50, <200, <1000, <5000, >=5000.

    Compared in minor units (bound * 10**exponent) so no float rounding decides a boundary.
    """
    scale = 10 ** max(exponent, 0)
    for band, bound in enumerate(AMOUNT_BAND_BOUNDS):
        if amount_minor < bound * scale:
            return band
    return len(AMOUNT_BAND_BOUNDS)


def _as_int(raw: object) -> int | None:
    """Raw values arrive from SQL as ints, or as text on some backends; anything else is unknown."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw)
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


def _text(raw: object) -> str:
    return "" if raw is None else str(raw).strip()


def hour_level(hour: int) -> str:
    return HOUR_BLOCKS[hour] if 0 <= hour < 24 else UNKNOWN


def payday_level(days: int | None) -> str:
    if days is None or days < 0:
        return UNKNOWN
    return PAYDAY_LEVELS[days] if days < len(PAYDAY_LEVELS) else PAYDAY_LATE


def hours_since_failure_level(hours: int | None) -> str:
    if hours is None or hours < 0:
        return UNKNOWN
    for bound, name in HOURS_SINCE_FAILURE_LEVELS:
        if hours < bound:
            return name
    return HOURS_SINCE_FAILURE_LATE


# Lookup table for the scoring loop: level of each whole hour below the last bound, in seconds.
SINCE_LEVEL_BY_HOUR: tuple[str, ...] = tuple(
    hours_since_failure_level(hours) for hours in range(HOURS_SINCE_FAILURE_LEVELS[-1][0])
)
SINCE_LEVEL_HORIZON = HOURS_SINCE_FAILURE_LEVELS[-1][0] * 3600


def retry_number_level(number: int | None) -> str:
    if number is None or number < 1:
        return UNKNOWN
    return str(number) if number < 4 else "4+"


def level(feature: str, raw: object) -> str:
    """THE bucketing function: the model level of a raw feature value (see the module constants)."""
    if feature == "weekday":
        number = _as_int(raw)
        return WEEKDAYS[number] if number is not None and 0 <= number < 7 else UNKNOWN
    if feature == "hour":
        number = _as_int(raw)
        return UNKNOWN if number is None else hour_level(number)
    if feature == "day_of_month":
        number = _as_int(raw)
        return str(number) if number is not None and 1 <= number <= 31 else UNKNOWN
    if feature == "payday_days":
        return payday_level(_as_int(raw))
    if feature == "hours_since_failure":
        return hours_since_failure_level(_as_int(raw))
    if feature == "retry_number":
        return retry_number_level(_as_int(raw))
    if feature == "amount_band":
        number = _as_int(raw)
        return str(number) if number is not None and 0 <= number <= len(AMOUNT_BAND_BOUNDS) else UNKNOWN
    if feature == "funding":
        text = _text(raw).lower()
        return text if text in FUNDING_TYPES else UNKNOWN
    if feature in ("brand", "segment"):
        return _text(raw).lower() or UNKNOWN
    if feature == "country":
        return _text(raw).upper() or UNKNOWN
    raise ValueError(f"unknown feature {feature!r}")


def levels(raw: RawFeatures) -> dict[str, str]:
    return {feature: level(feature, getattr(raw, feature)) for feature in FEATURES}


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The customer's zone; an unknown or empty name falls back to UTC rather than failing a whole tick."""
    try:
        return ZoneInfo(name or TIME_ZONE_FALLBACK)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(TIME_ZONE_FALLBACK)


def effective_payday(ctx: RetryContext) -> PaydayPattern | None:
    return ctx.payday if ctx.payday is not None else default_payday(ctx.country)


def payday_days_on(pattern: PaydayPattern | None, local_day: date) -> int | None:
    if pattern is None:
        return None
    payday = pattern.last_payday_on_or_before(local_day)
    return None if payday is None else (local_day - payday).days


def hours_between(earlier: datetime, later: datetime) -> int | None:
    """Whole hours from ``earlier`` to ``later``; None when later is before earlier (no meaningful value)."""
    seconds = (later - earlier).total_seconds()
    return int(seconds // 3600) if seconds >= 0 else None


def raw_features_at(ctx: RetryContext, at: datetime) -> RawFeatures:
    local = at.astimezone(zone(ctx.time_zone))
    return RawFeatures(
        weekday=local.weekday(),
        hour=local.hour,
        day_of_month=local.day,
        payday_days=payday_days_on(effective_payday(ctx), local.date()),
        hours_since_failure=hours_between(ctx.last_failure_at, at),
        retry_number=ctx.retry_number,
        funding=ctx.funding,
        brand=ctx.brand,
        amount_band=amount_band(ctx.amount_minor, ctx.exponent),
        segment=ctx.segment,
        country=ctx.country,
    )


def time_levels(ctx: RetryContext, at: datetime) -> dict[str, str]:
    """The levels of the slot-dependent features at ``at``: ``levels(raw_features_at(ctx, at))`` restricted to
    ``TIME_FEATURES``, without building the whole record (the scoring path)."""
    local = at.astimezone(zone(ctx.time_zone))
    local_day = local.date()
    return {
        "weekday": WEEKDAYS[local.weekday()],
        "hour": HOUR_BLOCKS[local.hour],
        "day_of_month": str(local.day),
        "payday_days": payday_level(payday_days_on(effective_payday(ctx), local_day)),
        "hours_since_failure": hours_since_failure_level(hours_between(ctx.last_failure_at, at)),
    }
