"""The django-q2 schedules this app needs; ``python manage.py sync_schedules`` installs them."""

from __future__ import annotations

from django.conf import settings


def schedules() -> list[dict[str, object]]:
    # A function, not a constant: the tick interval is a setting.
    return [
        {
            "name": "dunning: tick",
            "func": "dunning.tasks.run_dunning_tick",
            "schedule_type": "I",  # every N minutes
            "minutes": settings.DUNNING_TICK_MINUTES,
        }
    ]
