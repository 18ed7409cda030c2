"""The django-q2 schedules this app needs. ``python manage.py sync_schedules`` creates or updates them
(by name, idempotently); nothing here touches the database."""

from __future__ import annotations

from typing import TypedDict


class ScheduleSpec(TypedDict):
    name: str
    func: str
    schedule_type: str  # django_q.models.Schedule.MINUTES == "I"
    minutes: int


SCHEDULES: list[ScheduleSpec] = [
    {
        "name": "notifications: dispatch due emails",
        "func": "notifications.tasks.dispatch_due_notifications",
        "schedule_type": "I",
        "minutes": 1,
    },
    {
        "name": "notifications: retry due webhooks",
        "func": "notifications.tasks.retry_due_webhooks",
        "schedule_type": "I",
        "minutes": 1,
    },
    {
        "name": "notifications: purge expired message and webhook bodies",
        "func": "notifications.tasks.purge_expired_bodies",
        "schedule_type": "I",
        "minutes": 24 * 60,
    },
]
