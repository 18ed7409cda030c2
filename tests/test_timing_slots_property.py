"""Randomised checks of choose_slot's guarantees, with fixed seeds (no hypothesis dependency)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dunning.timing import (
    PaydayPattern,
    RetryContext,
    SlotChoice,
    TimingModel,
    choose_slot,
    choose_slot_cached,
)
from dunning.timing.model import DEFAULT_LOCAL_HOURS

ZONES = (
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "UTC",
)
CODES = (
    ("insufficient_funds", "soft"),
    ("generic_decline", "soft"),
    ("processing_error", "processing"),
    ("do_not_honor", "soft"),
    ("expired_card", "hard"),
)
# Windows start near the clock changes of 2026 as well as at random.
DST_DATES = (
    datetime(2026, 3, 8, tzinfo=UTC),  # New York springs forward
    datetime(2026, 3, 29, tzinfo=UTC),  # Paris springs forward
    datetime(2026, 4, 5, tzinfo=UTC),  # Chatham and Lord Howe fall back
    datetime(2026, 9, 27, tzinfo=UTC),  # Chatham springs forward
    datetime(2026, 10, 25, tzinfo=UTC),  # Paris falls back
    datetime(2026, 11, 1, tzinfo=UTC),  # New York falls back
)


def _model() -> TimingModel:
    rows = [
        ("insufficient_funds", "soft", "", None, 2_000, 400),
        ("insufficient_funds", "soft", "hour", 9, 500, 140),
        ("insufficient_funds", "soft", "hour", 19, 500, 60),
        ("insufficient_funds", "soft", "payday_days", 1, 300, 120),
        ("generic_decline", "soft", "", None, 50, 5),
        ("generic_decline", "soft", "weekday", 1, 10, 3),
    ]
    return TimingModel.from_raw_counts(rows)


MODELS = (TimingModel.empty(), _model())


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    not_before: datetime | None
    fixed_at: datetime | None
    local_hours: tuple[int, ...]

    def choose(self, model: TimingModel, ctx: RetryContext, *, cached: bool = False) -> SlotChoice:
        chooser = choose_slot_cached if cached else choose_slot
        return chooser(
            model,
            ctx,
            window_start=self.start,
            window_end=self.end,
            not_before=self.not_before,
            fixed_at=self.fixed_at,
            local_hours=self.local_hours,
        )


def _random_case(rng: random.Random) -> tuple[RetryContext, Window]:
    code, category = rng.choice(CODES)
    if rng.random() < 0.5:
        start = rng.choice(DST_DATES) + timedelta(minutes=rng.randrange(-3 * 24 * 60, 24 * 60))
    else:
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(365 * 24 * 60))
    start += timedelta(seconds=rng.randrange(60), microseconds=rng.randrange(1_000_000))
    end = start + timedelta(minutes=rng.randrange(0, 5 * 24 * 60))
    roll = rng.random()
    if roll < 0.3:
        not_before = None
    elif roll < 0.8:
        not_before = start + (end - start) * rng.random()
    elif roll < 0.9:
        not_before = start - timedelta(hours=rng.randrange(1, 48))
    else:
        not_before = end + timedelta(hours=rng.randrange(0, 48))
    payday = rng.choice((None, PaydayPattern("fortnightly", (4,), datetime(2026, 1, 9).date(), 0.8, 9)))
    ctx = RetryContext(
        decline_code=code,
        decline_category=category,
        retry_number=rng.randrange(1, 6),
        funding=rng.choice(("credit", "debit", "prepaid", "unknown")),
        brand=rng.choice(("visa", "mastercard", "")),
        amount_minor=rng.randrange(100, 1_000_000),
        exponent=rng.choice((0, 2, 3)),
        segment=rng.choice(("smb", "enterprise", "")),
        country=rng.choice(("US", "GB", "FR", "AU", "IN", "NZ", "")),
        time_zone=rng.choice(ZONES),
        last_failure_at=start - timedelta(minutes=rng.randrange(0, 10 * 24 * 60)),
        payday=payday,
    )
    hours = (
        DEFAULT_LOCAL_HOURS
        if rng.random() < 0.6
        else tuple(sorted(rng.sample(range(24), rng.randrange(1, 8))))
    )
    fixed_at = start + (end - start) * rng.random() if rng.random() < 0.5 else None
    return ctx, Window(start, end, not_before, fixed_at, hours)


@pytest.mark.parametrize("seed", range(4))
def test_choose_slot_stays_in_the_window_and_respects_spacing(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(750):
        ctx, window = _random_case(rng)
        start, end, not_before = window.start, window.end, window.not_before
        choice = window.choose(rng.choice(MODELS), ctx, cached=rng.random() < 0.3)

        assert start <= choice.at <= end, (ctx, window, choice.at)
        assert choice.at.utcoffset() == timedelta(0)
        if not_before is not None and start <= not_before <= end:
            assert choice.at >= not_before, (ctx, window, choice.at)
        for at, p in choice.runner_ups:
            assert start <= at <= end
            assert p <= choice.estimate.p
            if not_before is not None:
                assert at >= not_before
        assert 0 < choice.estimate.p < 1
        assert choice.explanation


@pytest.mark.parametrize("seed", range(2))
def test_chosen_candidates_are_on_an_allowed_local_hour(seed: int) -> None:
    """Whenever a candidate exists, the answer is one of them: on the hour, local, at an allowed hour."""
    rng = random.Random(100 + seed)
    for _ in range(500):
        ctx, window = _random_case(rng)
        window = replace(window, not_before=None, end=window.start + timedelta(days=2))
        choice = window.choose(rng.choice(MODELS), ctx)
        at_local = choice.at.astimezone(ZoneInfo(ctx.time_zone))
        assert (at_local.minute, at_local.second, at_local.microsecond) == (0, 0, 0)
        assert at_local.hour in window.local_hours


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Europe/Paris", datetime(2026, 3, 29, tzinfo=UTC)),
        ("Europe/Paris", datetime(2026, 10, 25, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 3, 8, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 11, 1, tzinfo=UTC)),
        ("Pacific/Chatham", datetime(2026, 9, 27, tzinfo=UTC)),
    ],
)
def test_every_allowed_local_hour_is_a_candidate_across_clock_changes(zone: str, day: datetime) -> None:
    """The skipped hour of a spring-forward never appears; every other hour appears once, on the hour."""
    tz = ZoneInfo(zone)
    ctx = RetryContext(
        "expired_card", "hard", 1, "credit", "visa", 1_000, 2, "", "", zone, day - timedelta(days=2), None
    )
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC) - timedelta(days=1)
    end = start + timedelta(days=3)
    seen = []
    for hour in range(24):
        choice = choose_slot(
            TimingModel.empty(), ctx, window_start=start, window_end=end, local_hours=(hour,)
        )
        local_moment = choice.at.astimezone(tz)
        if choice.runner_ups or local_moment.hour == hour:
            assert (local_moment.hour, local_moment.minute) == (hour, 0), (zone, hour, local_moment)
            seen.append(hour)
    assert len(seen) >= 23
