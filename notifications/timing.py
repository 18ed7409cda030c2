"""When a message may leave: quiet hours in the customer's time zone, and retry backoff.

All times in and out are timezone-aware UTC; the customer's zone is used only to decide what "21:00" and
"08:00" mean for them, so a delay across a daylight-saving change lands on the right local hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifications import conf

# Email retry delays after the 1st, 2nd, … failed attempt (transient errors only).
EMAIL_BACKOFF: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def in_quiet_hours(hour: int, start: int, end: int) -> bool:
    if start == end:
        return False  # no quiet hours
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end  # the window wraps midnight, e.g. 21-8


def quiet_hours_end(moment: datetime, time_zone: str) -> datetime | None:
    """When ``moment`` (aware) falls in the customer's quiet hours, the UTC time they end; else None."""
    start, end = conf.quiet_hours()
    zone = _zone(time_zone)
    local = moment.astimezone(zone)
    if not in_quiet_hours(local.hour, start, end):
        return None
    day = local.date()
    if start > end and local.hour >= start:
        day += timedelta(days=1)  # evening: quiet until tomorrow morning
    # Build the wall-clock time in the zone, then convert: a DST change in between is accounted for.
    resume = datetime.combine(day, time(hour=end), tzinfo=zone)
    # A wall time inside a spring-forward gap does not exist; the round trip moves it forward.
    return resume.astimezone(UTC).astimezone(zone).astimezone(UTC)


def earliest_send_time(moment: datetime, time_zone: str) -> datetime:
    return quiet_hours_end(moment, time_zone) or moment


def email_retry_delay(attempts: int) -> timedelta:
    """The delay after ``attempts`` failed attempts (1-based)."""
    return EMAIL_BACKOFF[min(max(attempts, 1), len(EMAIL_BACKOFF)) - 1]
