from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from dunning.timing.payday import (
    EURO_AREA,
    PaydayPattern,
    days_in_month,
    default_payday,
    detect_payday,
    last_working_day,
)


def _months(first: date, count: int) -> list[tuple[int, int]]:
    year, month = first.year, first.month
    out = []
    for _ in range(count):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _noise(rng: random.Random, count: int, start: date = date(2025, 1, 1), span: int = 420) -> list[date]:
    return [start + timedelta(days=rng.randrange(span)) for _ in range(count)]


def test_planted_monthly_day_is_found_despite_jitter_and_noise() -> None:
    # Jitter of one day either side, most payments on the day itself.
    jitter = (-1, 0, 0, 1)
    rng = random.Random(7)
    dates = [
        date(year, month, 20) + timedelta(days=jitter[index % 4])
        for index, (year, month) in enumerate(_months(date(2025, 1, 1), 14))
    ]
    dates += _noise(rng, 2)

    pattern = detect_payday(dates)

    assert pattern is not None
    assert (pattern.kind, pattern.days) == ("monthly", (20,))
    assert pattern.support >= 14
    assert 0.5 < pattern.confidence <= 1.0


def test_planted_semi_monthly_first_and_fifteenth_is_found() -> None:
    rng = random.Random(11)
    dates = []
    for index, (year, month) in enumerate(_months(date(2025, 3, 1), 10)):
        dates.append(date(year, month, 1) + timedelta(days=(0, 0, 1)[index % 3]))
        dates.append(date(year, month, 15) + timedelta(days=(0, 1, 2)[index % 3]))
    dates += _noise(rng, 2)

    pattern = detect_payday(dates)

    assert pattern is not None
    assert (pattern.kind, pattern.days) == ("semi_monthly", (1, 15))
    assert pattern.describe() == "the 1st and 15th of each month"


def test_planted_fortnightly_friday_is_found_with_the_right_phase() -> None:
    rng = random.Random(3)
    first_payday = date(2026, 1, 9)  # a Friday
    paydays = [first_payday + timedelta(days=14 * index) for index in range(12)]
    dates = [payday + timedelta(days=rng.choice((0, 0, 1, 2))) for payday in paydays]

    pattern = detect_payday(dates)

    assert pattern is not None
    assert (pattern.kind, pattern.days) == ("fortnightly", (4,))
    assert pattern.anchor is not None
    assert (pattern.anchor - first_payday).days % 14 == 0
    assert pattern.describe() == "every other Friday"
    # The off-week Friday is not a payday: the last one is a week earlier.
    off_week = paydays[-1] + timedelta(days=7)
    assert pattern.last_payday_on_or_before(off_week) == paydays[-1]
    assert pattern.last_payday_on_or_before(paydays[-1]) == paydays[-1]


def test_planted_weekly_wednesday_is_found() -> None:
    first = date(2026, 2, 4)  # a Wednesday
    dates = [first + timedelta(days=7 * index + (index % 2)) for index in range(24)]

    pattern = detect_payday(dates)

    assert pattern is not None
    assert (pattern.kind, pattern.days) == ("weekly", (2,))


def test_last_working_day_is_found() -> None:
    rng = random.Random(5)
    dates = [
        last_working_day(year, month) + timedelta(days=rng.choice((0, 0, 1)))
        for year, month in _months(date(2025, 1, 1), 12)
    ]

    pattern = detect_payday(dates)

    assert pattern is not None
    assert pattern.kind == "last_working_day"
    assert pattern.describe() == "the last working day of the month"


@pytest.mark.parametrize("seed", range(12))
def test_uniform_random_dates_find_nothing(seed: int) -> None:
    rng = random.Random(seed)
    assert detect_payday(_noise(rng, 12, span=365)) is None


def test_false_alarm_rate_on_noise_stays_under_the_significance_level() -> None:
    rng = random.Random(2026)
    found = sum(detect_payday(_noise(rng, rng.randrange(6, 30), span=400)) is not None for _ in range(400))
    assert found / 400 < 0.02


def test_too_few_events_find_nothing() -> None:
    assert detect_payday([date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]) is None
    assert detect_payday([]) is None


def test_last_day_of_month_pattern_clamps_short_months() -> None:
    pattern = PaydayPattern("monthly", (31,), None, 0.9, 10)
    assert pattern.last_payday_on_or_before(date(2026, 2, 28)) == date(2026, 2, 28)
    assert pattern.last_payday_on_or_before(date(2026, 3, 5)) == date(2026, 2, 28)
    assert pattern.last_payday_on_or_before(date(2024, 3, 1)) == date(2024, 2, 29)
    assert pattern.describe() == "the last day of each month"


def test_semi_monthly_last_payday_crosses_the_year() -> None:
    pattern = PaydayPattern("semi_monthly", (1, 15), None, 0.9, 10)
    assert pattern.last_payday_on_or_before(date(2026, 1, 14)) == date(2026, 1, 1)
    assert pattern.last_payday_on_or_before(date(2026, 1, 15)) == date(2026, 1, 15)
    assert pattern.last_payday_on_or_before(date(2026, 3, 31)) == date(2026, 3, 15)


def test_last_working_day_skips_weekends() -> None:
    assert last_working_day(2026, 1) == date(2026, 1, 30)  # the 31st is a Saturday
    assert last_working_day(2026, 5) == date(2026, 5, 29)  # the 31st is a Sunday
    assert last_working_day(2026, 6) == date(2026, 6, 30)
    assert days_in_month(2028, 2) == 29
    assert days_in_month(2100, 2) == 28


def test_pattern_json_round_trip() -> None:
    pattern = PaydayPattern("fortnightly", (4,), date(2026, 1, 9), 0.87, 11)
    assert PaydayPattern.from_json(pattern.to_json()) == pattern
    with pytest.raises(ValueError, match="unknown payday kind"):
        PaydayPattern.from_json({"kind": "yearly"})


@pytest.mark.parametrize(
    ("country", "kind", "days"),
    [
        ("US", "semi_monthly", (1, 15)),
        ("us", "semi_monthly", (1, 15)),
        ("GB", "last_working_day", ()),
        ("DE", "last_working_day", ()),
        ("FR", "last_working_day", ()),
        ("AU", "fortnightly", (3,)),
    ],
)
def test_default_payday_per_country(country: str, kind: str, days: tuple[int, ...]) -> None:
    pattern = default_payday(country)
    assert pattern is not None
    assert (pattern.kind, pattern.days) == (kind, days)
    assert pattern.confidence <= 0.3
    assert pattern.support == 0


def test_default_payday_is_none_elsewhere() -> None:
    assert default_payday("JP") is None
    assert default_payday("") is None
    assert {"DE", "FR", "NL", "BG", "HR"} <= EURO_AREA


def test_australian_default_without_phase_answers_the_latest_thursday() -> None:
    pattern = default_payday("AU")
    assert pattern is not None
    assert pattern.last_payday_on_or_before(date(2026, 1, 20)) == date(2026, 1, 15)
    assert "phase unknown" in pattern.describe()
