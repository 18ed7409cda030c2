"""Schedule maths for policy steps. Pure: no Django, no database.

A step says "day N at local hour H". Day 0 is the local calendar day of the first failure in the customer's
time zone; hour H is wall-clock time there, so a 09:00 retry stays at 09:00 across daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_wall_time_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``day`` at wall-clock time ``at`` in ``zone``.

    On the spring-forward day an hour that does not exist (02:30 in Europe/Paris) moves forward by the gap
    (to 03:30); on the fall-back day an hour that happens twice is taken the first time.
    """
    # PEP 495: with fold=0 a nonexistent time is read with the offset from before the change (so it lands
    # after the gap) and a repeated time is its first occurrence: exactly the two rules above.
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)


def step_due_at(
    *,
    opened_at: datetime,
    day_offset: int,
    local_hour: int | None,
    time_zone: str,
    shift: timedelta = timedelta(0),
) -> datetime:
    """When a step is due, in UTC.

    Without a local hour the step runs ``day_offset`` days after the failure, at the same time of day. With
    one, it runs at that hour of the ``day_offset``-th local day; if that moment is already behind the
    failure (day 0, 09:00, but the failure was at 15:00), it runs at once. ``shift`` is added last: the
    time a case spent paused pushes the rest of its schedule back.
    """
    if opened_at.tzinfo is None:
        raise ValueError("opened_at must be timezone-aware")
    zone = ZoneInfo(time_zone)
    local_open = opened_at.astimezone(zone)
    at = local_open.time().replace(tzinfo=None) if local_hour is None else time(local_hour)
    due = local_wall_time_to_utc(local_open.date() + timedelta(days=day_offset), at, zone)
    return max(due, opened_at) + shift


def local_date(moment: datetime, time_zone: str) -> date:
    return moment.astimezone(ZoneInfo(time_zone)).date()
