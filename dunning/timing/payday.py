"""Paydays: a customer's detected pay pattern, and public defaults per country.

A retry for insufficient funds succeeds when money has arrived. The dates on which a customer's earlier payments
succeeded (local dates) hint at when that happens. ``detect_payday`` looks for one of five patterns and keeps it
only when the evidence beats chance; ``default_payday`` gives a low-confidence public calendar per country.

The statistic (see ``detect_payday``): an event *fits* a candidate pattern when it falls from one day before to
two days after one of the pattern's paydays (payroll lands a day early on weekends and holidays; people pay a day
or two later). Under the null hypothesis that payment dates are unrelated to the pattern, each event fits with
probability ``p0`` = share of calendar days inside such windows (4 days per monthly payday out of 30.44, so
0.131 for a monthly day; 4/7 for a weekday; 4/14 for a fortnightly weekday). The number of fitting events is
then Binomial(n, p0), and the pattern's p-value is the binomial upper tail P(X >= k). All candidate patterns are
tested at once (about 130), so the smallest tail is Bonferroni-corrected (multiplied by the number tested) and
must stay under ``SIGNIFICANCE``. The pattern with the smallest tail wins; comparing tails rather than raw fit
counts is what makes "the 1st" beat "the 1st and 15th" when only the 1st is used (the pair fits the same events
but doubles ``p0``), and "every other Friday" beat "every Friday".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

MONTHLY = "monthly"
SEMI_MONTHLY = "semi_monthly"
WEEKLY = "weekly"
FORTNIGHTLY = "fortnightly"
LAST_WORKING_DAY = "last_working_day"
KINDS: tuple[str, ...] = (MONTHLY, SEMI_MONTHLY, WEEKLY, FORTNIGHTLY, LAST_WORKING_DAY)

WEEKDAY_NAMES: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)

# An event fits a payday when it lies this many days after it (-1 = the day before), tried cheapest first.
# The cost ranks candidates that fit the same number of events: first by how many events miss the payday itself
# (the day most payments land on wins), then by how far they miss. People pay a day or two late more often than
# payroll lands early, so the day before costs most: 15th/16th/17th in equal numbers reads "the 15th".
OFF_PAYDAY_COST = 10_000
FIT_OFFSETS: tuple[int, ...] = (0, 1, 2, -1)
FIT_COST: dict[int, int] = {0: 0, 1: OFF_PAYDAY_COST + 4, 2: OFF_PAYDAY_COST + 6, -1: OFF_PAYDAY_COST + 7}
WINDOW_DAYS = len(FIT_OFFSETS)
MEAN_MONTH_DAYS = 365.2425 / 12
# Family-wise error rate for the whole candidate set (after the Bonferroni correction).
SIGNIFICANCE = 0.01
# Public calendars are a guess about one customer, so they carry little weight.
DEFAULT_CONFIDENCE = 0.3

# Semi-monthly pairs tried: first day 1..16, second day 13..17 days later (1st/15th, 15th/last, 5th/20th...).
SEMI_MONTHLY_PAIRS: tuple[tuple[int, int], ...] = tuple(
    sorted({(first, min(first + gap, 31)) for first in range(1, 17) for gap in range(13, 18)})
)
CANDIDATES_TESTED = 31 + len(SEMI_MONTHLY_PAIRS) + 7 + 14 + 1

# ISO 3166 alpha-2 codes of the euro area (Bulgaria joined on 1 January 2026).
EURO_AREA: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "DE",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PT",
        "SI",
        "SK",
    ]
)

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


@lru_cache(maxsize=4096)
def last_working_day(year: int, month: int) -> date:
    """Last Monday-to-Friday day of the month. Public holidays are ignored: they differ per region, and the fit
    window already tolerates a payroll run a day early."""
    day = date(year, month, days_in_month(year, month))
    weekday = day.weekday()
    if weekday >= 5:
        day -= timedelta(days=weekday - 4)
    return day


def ordinal_suffix(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


@dataclass(frozen=True)
class PaydayPattern:
    kind: str  # "monthly" | "semi_monthly" | "weekly" | "fortnightly" | "last_working_day"
    # monthly/semi_monthly: days of month (31 = last day of a shorter month); weekly/fortnightly: weekday 0..6.
    days: tuple[int, ...]
    anchor: date | None  # fortnightly: one known payday (sets the phase); None = phase unknown
    confidence: float  # 0..1
    support: int  # events that fit

    def last_payday_on_or_before(self, day: date) -> date | None:
        """The most recent payday on or before ``day``. A fortnightly pattern without an anchor has no known
        phase and answers like a weekly one (the latest of its weekday), which is right half the time and never
        more than a week off."""
        kind = self.kind
        if kind in (MONTHLY, SEMI_MONTHLY):
            if not self.days:
                return None
            best: date | None = None
            year, month = day.year, day.month
            for _ in range(2):
                length = days_in_month(year, month)
                for wanted in self.days:
                    candidate = date(year, month, min(wanted, length))
                    if candidate <= day and (best is None or candidate > best):
                        best = candidate
                if best is not None:
                    return best
                year, month = _previous_month(year, month)
            return best
        if kind in (WEEKLY, FORTNIGHTLY):
            if not self.days:
                return None
            latest = day - timedelta(days=(day.weekday() - self.days[0]) % 7)
            if kind == FORTNIGHTLY and self.anchor is not None and ((latest - self.anchor).days // 7) % 2:
                latest -= timedelta(days=7)
            return latest
        if kind == LAST_WORKING_DAY:
            this_month = last_working_day(day.year, day.month)
            if this_month <= day:
                return this_month
            return last_working_day(*_previous_month(day.year, day.month))
        return None

    def payday_label(self, payday: date) -> str:
        """How a given payday of this pattern is named in an explanation: "the 15th", "payday Friday"."""
        if self.kind in (MONTHLY, SEMI_MONTHLY):
            return f"the {ordinal_suffix(payday.day)}"
        if self.kind in (WEEKLY, FORTNIGHTLY):
            return f"payday {WEEKDAY_NAMES[payday.weekday()]}"
        return "the last working day"

    def describe(self) -> str:
        if self.kind in (MONTHLY, SEMI_MONTHLY):
            named = [("the last day" if day == 31 else ordinal_suffix(day)) for day in self.days]
            if not named[0].startswith("the "):
                named[0] = f"the {named[0]}"
            return f"{' and '.join(named)} of each month"
        if self.kind == WEEKLY:
            return f"every {WEEKDAY_NAMES[self.days[0]]}"
        if self.kind == FORTNIGHTLY:
            phase = "" if self.anchor is not None else " (phase unknown)"
            return f"every other {WEEKDAY_NAMES[self.days[0]]}{phase}"
        return "the last working day of the month"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "days": list(self.days),
            "anchor": self.anchor.isoformat() if self.anchor else None,
            "confidence": round(self.confidence, 4),
            "support": self.support,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> PaydayPattern:
        kind = str(data["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown payday kind {kind!r}")
        raw_days = data.get("days")
        days = tuple(int(str(day)) for day in raw_days) if isinstance(raw_days, list | tuple) else ()
        anchor = data.get("anchor")
        return cls(
            kind=kind,
            days=days,
            anchor=date.fromisoformat(str(anchor)) if anchor else None,
            confidence=float(str(data.get("confidence", 0.0))),
            support=int(str(data.get("support", 0))),
        )


def binomial_log_tail(n: int, k: int, p: float) -> float:
    """log P(X >= k) for X ~ Binomial(n, p), summed from the k term upwards in log space (no underflow)."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    log_term = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    ratio_base = p / (1.0 - p)
    total = 1.0
    relative = 1.0
    for i in range(k, n):
        relative *= (n - i) / (i + 1) * ratio_base
        total += relative
    return log_term + math.log(total)


def _best(masks: Sequence[int], offset_sums: Sequence[int]) -> tuple[int, int]:
    """Index and fit count of the candidate with most fits; ties go to the cheaper fits, then the lower index."""
    best_index, best_key = -1, (0, 0)
    for index, mask in enumerate(masks):
        if not mask:
            continue
        key = (mask.bit_count(), -offset_sums[index])
        if key > best_key:
            best_index, best_key = index, key
    return best_index, best_key[0]


def detect_payday(dates: Sequence[date], *, min_events: int = 4) -> PaydayPattern | None:
    """Find the customer's pay pattern from the local dates of earlier successful payments, or None for noise.

    Candidates: a monthly day (1..31), a semi-monthly pair, a weekly weekday, a fortnightly weekday with its
    phase, and the last working day of the month. Each event is mapped once to every candidate it fits (a
    bit per event in one integer per candidate), so the cost is a few microseconds per event. The best candidate
    of each family is scored by the binomial tail described in the module docstring; the overall best must
    have at least ``min_events`` fitting events and a Bonferroni-corrected p-value under ``SIGNIFICANCE``.

    ``confidence`` is the share of events explained beyond chance, ``(k/n - p0) / (1 - p0)`` (Cohen's kappa
    against the chance rate), times one minus the corrected p-value.
    """
    events = sorted(set(dates))
    count = len(events)
    if count < min_events:
        return None

    monthly = [0] * 32
    monthly_offsets = [0] * 32
    weekly = [0] * 7
    weekly_offsets = [0] * 7
    fortnightly = [0] * 14
    fortnightly_offsets = [0] * 14
    working_day = 0
    working_day_offsets = 0
    for index, event in enumerate(events):
        bit = 1 << index
        event_ordinal = event.toordinal()
        for offset in FIT_OFFSETS:
            distance = FIT_COST[offset]
            payday_ordinal = event_ordinal - offset
            payday = date.fromordinal(payday_ordinal)
            day, length = payday.day, days_in_month(payday.year, payday.month)
            for candidate in range(day, 32) if day == length else (day,):
                if not monthly[candidate] & bit:
                    monthly[candidate] |= bit
                    monthly_offsets[candidate] += distance
            weekday = (payday_ordinal - 1) % 7
            if not weekly[weekday] & bit:
                weekly[weekday] |= bit
                weekly_offsets[weekday] += distance
            slot = weekday * 2 + ((payday_ordinal - 1) // 7) % 2
            if not fortnightly[slot] & bit:
                fortnightly[slot] |= bit
                fortnightly_offsets[slot] += distance
            if not working_day & bit and payday == last_working_day(payday.year, payday.month):
                working_day |= bit
                working_day_offsets += distance

    semi_masks = [monthly[first] | monthly[second] for first, second in SEMI_MONTHLY_PAIRS]
    semi_offsets = [monthly_offsets[first] + monthly_offsets[second] for first, second in SEMI_MONTHLY_PAIRS]

    monthly_index, monthly_fits = _best(monthly, monthly_offsets)
    semi_index, semi_fits = _best(semi_masks, semi_offsets)
    weekly_index, weekly_fits = _best(weekly, weekly_offsets)
    fortnight_index, fortnight_fits = _best(fortnightly, fortnightly_offsets)
    monthly_share = WINDOW_DAYS / MEAN_MONTH_DAYS
    # (fits, chance share, family order for exact ties: simpler patterns first, builder)
    families: list[tuple[int, float, int, str, int]] = [
        (monthly_fits, monthly_share, 0, MONTHLY, monthly_index),
        (working_day.bit_count(), monthly_share, 1, LAST_WORKING_DAY, 0),
        (semi_fits, 2 * monthly_share, 2, SEMI_MONTHLY, semi_index),
        (weekly_fits, WINDOW_DAYS / 7, 3, WEEKLY, weekly_index),
        (fortnight_fits, WINDOW_DAYS / 14, 4, FORTNIGHTLY, fortnight_index),
    ]
    best: tuple[float, int, int, float, str, int] | None = None
    for fits, chance, order, kind, index in families:
        if fits < min_events or index < 0:
            continue
        log_tail = binomial_log_tail(count, fits, chance)
        key = (log_tail, order, fits, chance, kind, index)
        if best is None or key[:2] < best[:2]:
            best = key
    if best is None:
        return None
    log_tail, _order, fits, chance, kind, index = best
    corrected = min(1.0, math.exp(log_tail) * CANDIDATES_TESTED)
    if corrected > SIGNIFICANCE:
        return None
    kappa = max(0.0, (fits / count - chance) / (1.0 - chance))
    confidence = round(kappa * (1.0 - corrected), 4)

    anchor: date | None = None
    if kind == MONTHLY:
        days: tuple[int, ...] = (index,)
    elif kind == SEMI_MONTHLY:
        days = SEMI_MONTHLY_PAIRS[index]
    elif kind == WEEKLY:
        days = (index,)
    elif kind == FORTNIGHTLY:
        weekday, phase = divmod(index, 2)
        days = (weekday,)
        latest = events[-1].toordinal()
        payday_ordinal = latest - ((events[-1].weekday() - weekday) % 7)
        if ((payday_ordinal - 1) // 7) % 2 != phase:
            payday_ordinal -= 7
        anchor = date.fromordinal(payday_ordinal)
    else:
        days = ()
    return PaydayPattern(kind=kind, days=days, anchor=anchor, confidence=confidence, support=fits)


@lru_cache(maxsize=512)
def default_payday(country: str) -> PaydayPattern | None:
    """A public pay calendar for the country, used when a customer has no detected pattern.

    - US: semi-monthly on the 1st and 15th. Bi-weekly and weekly pay on Fridays is at least as common in the US
      (BLS, "Length of pay periods in the Current Employment Statistics survey"), but a pattern has one kind and
      an unknown fortnightly phase is a coin flip; the Friday effect is a weekday prior for
      insufficient-funds codes instead (see ``priors.py``), so it is not counted twice.
    - GB: the last working day of the month (monthly pay is the UK norm; payroll runs early on weekends).
    - Euro area: the end of the month, modelled as the last working day (pay falls due after the work is done,
      e.g. German civil code section 614, and month-end payroll is the custom).
    - AU: fortnightly on Thursday; the phase is unknown, so it answers like a weekly Thursday.
    Anything else: None. A judgement, not a measurement: confidence is ``DEFAULT_CONFIDENCE``.
    """
    code = country.strip().upper()
    if code == "US":
        return PaydayPattern(SEMI_MONTHLY, (1, 15), None, DEFAULT_CONFIDENCE, 0)
    if code in ("GB", "UK") or code in EURO_AREA:
        return PaydayPattern(LAST_WORKING_DAY, (), None, DEFAULT_CONFIDENCE, 0)
    if code == "AU":
        return PaydayPattern(FORTNIGHTLY, (3,), None, DEFAULT_CONFIDENCE, 0)
    return None
