"""Schedule maths: day N at local hour H, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dunning.schedule import step_due_at

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_morning_retry_stays_at_nine_local_across_the_spring_change() -> None:
    # Failure on Saturday 28 March 2026, 15:00 Paris (CET, UTC+1). Clocks go forward on the 29th.
    opened = datetime(2026, 3, 28, 15, 0, tzinfo=PARIS)
    before = step_due_at(opened_at=opened, day_offset=0, local_hour=9, time_zone="Europe/Paris")
    after = step_due_at(opened_at=opened, day_offset=2, local_hour=9, time_zone="Europe/Paris")
    assert after.astimezone(PARIS).hour == 9
    assert after == utc(2026, 3, 30, 7, 0)  # CEST, UTC+2
    # Day 0 at 09:00 is before the failure: the step runs at once.
    assert before == opened


def test_morning_retry_stays_at_nine_local_across_the_autumn_change() -> None:
    opened = datetime(2026, 10, 24, 12, 0, tzinfo=PARIS)  # CEST; clocks go back on the 25th
    due = step_due_at(opened_at=opened, day_offset=1, local_hour=9, time_zone="Europe/Paris")
    assert due == utc(2026, 10, 25, 8, 0)  # already CET, UTC+1
    assert due.astimezone(PARIS).hour == 9


def test_an_hour_that_does_not_exist_moves_forward() -> None:
    opened = datetime(2026, 3, 28, 12, 0, tzinfo=PARIS)
    due = step_due_at(opened_at=opened, day_offset=1, local_hour=2, time_zone="Europe/Paris")
    # 02:00 on 29 March does not exist in Paris; the step runs at 03:00 CEST.
    assert due == utc(2026, 3, 29, 1, 0)
    assert due.astimezone(PARIS).hour == 3


def test_an_hour_that_happens_twice_is_taken_the_first_time() -> None:
    opened = datetime(2026, 10, 24, 12, 0, tzinfo=PARIS)
    due = step_due_at(opened_at=opened, day_offset=1, local_hour=2, time_zone="Europe/Paris")
    assert due == utc(2026, 10, 25, 0, 0)  # 02:00 CEST, the first of the two


def test_without_a_local_hour_the_step_keeps_the_failures_time_of_day() -> None:
    opened = datetime(2026, 3, 27, 15, 30, tzinfo=PARIS)
    due = step_due_at(opened_at=opened, day_offset=3, local_hour=None, time_zone="Europe/Paris")
    assert due.astimezone(PARIS).replace(tzinfo=None) == datetime(2026, 3, 30, 15, 30)
    # 72 wall-clock hours, but only 71 real hours because of the spring change.
    assert due - opened == timedelta(hours=71)


def test_day_zero_is_the_customers_local_day() -> None:
    # 23:30 UTC on 1 June is already 2 June in Tokyo: day 1 at 09:00 is 3 June Tokyo time.
    opened = utc(2026, 6, 1, 23, 30)
    due = step_due_at(opened_at=opened, day_offset=1, local_hour=9, time_zone="Asia/Tokyo")
    assert due == utc(2026, 6, 3, 0, 0)


def test_pause_shift_pushes_the_schedule_back() -> None:
    opened = utc(2026, 5, 1, 10, 0)
    plain = step_due_at(opened_at=opened, day_offset=4, local_hour=9, time_zone="UTC")
    shifted = step_due_at(
        opened_at=opened, day_offset=4, local_hour=9, time_zone="UTC", shift=timedelta(days=2)
    )
    assert shifted - plain == timedelta(days=2)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        step_due_at(opened_at=datetime(2026, 1, 1), day_offset=0, local_hour=None, time_zone="UTC")
