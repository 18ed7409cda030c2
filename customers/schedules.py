"""The django-q2 schedules of the customers layer; ``python manage.py sync_schedules`` installs them."""

from __future__ import annotations

SCHEDULES: list[dict[str, object]] = [
    {
        "name": "customers: purge expired CSV imports",
        "func": "customers.tasks.purge_expired_account_imports",
        "schedule_type": "H",  # hourly
    },
]
