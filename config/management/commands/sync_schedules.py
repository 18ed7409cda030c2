"""Create or update the django-q2 schedules of every app. Idempotent: run it after each deploy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string
from django_q.models import Schedule

# Each app lists its schedules in <app>/schedules.py: a SCHEDULES list, or a schedules() function when the
# values depend on settings. Every entry has a unique "name" and the fields of django_q.models.Schedule.
SCHEDULE_SOURCES = [
    "customers.schedules.SCHEDULES",
    "notifications.schedules.SCHEDULES",
    "dunning.schedules.schedules",
    "reporting.schedules.schedules",
]


def wanted_schedules() -> list[dict[str, object]]:
    wanted: list[dict[str, object]] = []
    for path in SCHEDULE_SOURCES:
        source = import_string(path)
        wanted.extend(source() if callable(source) else source)
    return wanted


class Command(BaseCommand):
    help = "Create or update the task schedules (the dunning tick and the other periodic jobs)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--prune", action="store_true", help="Delete schedules this project no longer has."
        )

    def handle(self, *args: Any, prune: bool, **options: Any) -> None:
        wanted = wanted_schedules()
        for spec in wanted:
            defaults = {key: value for key, value in spec.items() if key != "name"}
            schedule, created = Schedule.objects.get_or_create(name=spec["name"], defaults=defaults)
            changed = [key for key, value in defaults.items() if getattr(schedule, key) != value]
            if changed:
                for key in changed:
                    setattr(schedule, key, defaults[key])
                schedule.save(update_fields=changed)
            verb = "created" if created else ("updated" if changed else "unchanged")
            self.stdout.write(f"{spec['name']}: {verb}")
        if prune:
            names = {spec["name"] for spec in wanted}
            deleted, _ = Schedule.objects.exclude(name__in=names).delete()
            self.stdout.write(f"pruned {deleted} schedule(s)")
