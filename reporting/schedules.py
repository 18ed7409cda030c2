"""The django-q2 schedules of the reporting app; ``python manage.py sync_schedules`` installs them.

The rollups themselves are refreshed by the dunning tick (``dunning.signals.tick_finished``), not here.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.utils import timezone

from reporting import conf

DIGEST_WEEKDAY = 0  # Monday
DIGEST_TIME = time(7, 0)
REBUILD_TIME = time(3, 30)


def _next(at: time, *, weekday: int | None = None) -> datetime:
    """The next moment at ``at`` (server time zone), on ``weekday`` if given. The same all day long, so
    repeated syncs within a day leave the schedule unchanged."""
    today = timezone.localdate()
    day = today + timedelta(days=1)
    if weekday is not None:
        day = today + timedelta(days=(weekday - today.weekday()) % 7 or 7)
    return timezone.make_aware(datetime.combine(day, at))


def schedules() -> list[dict[str, object]]:
    wanted: list[dict[str, object]] = [
        {
            "name": "reporting: nightly rollup rebuild",
            "func": "reporting.tasks.rebuild_rollups",
            "schedule_type": "D",
            "next_run": _next(REBUILD_TIME),
        }
    ]
    # Off by default: it only exists once REPORTING_WEEKLY_DIGEST is on (and the task checks again).
    if conf.weekly_digest_enabled():
        wanted.append(
            {
                "name": "reporting: weekly digest",
                "func": "reporting.tasks.send_weekly_digest",
                "schedule_type": "W",
                "next_run": _next(DIGEST_TIME, weekday=DIGEST_WEEKDAY),
            }
        )
    return wanted
