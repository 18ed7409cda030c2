from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django_q.models import Schedule

pytestmark = pytest.mark.django_db


def test_sync_schedules_installs_every_apps_schedules_once() -> None:
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    names = set(Schedule.objects.values_list("name", flat=True))
    assert {
        "dunning: tick",
        "notifications: dispatch due emails",
        "notifications: retry due webhooks",
        "customers: purge expired CSV imports",
    } <= names
    tick = Schedule.objects.get(name="dunning: tick")
    assert (tick.func, tick.schedule_type, tick.minutes) == ("dunning.tasks.run_dunning_tick", "I", 5)
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    assert "created" not in out.getvalue()
    assert Schedule.objects.count() == len(names)


def test_sync_schedules_updates_a_changed_interval_and_prunes_strangers(settings) -> None:  # type: ignore[no-untyped-def]
    call_command("sync_schedules", stdout=StringIO())
    Schedule.objects.create(name="old job", func="os.getcwd", schedule_type="D")
    settings.DUNNING_TICK_MINUTES = 2
    out = StringIO()
    call_command("sync_schedules", "--prune", stdout=out)
    assert Schedule.objects.get(name="dunning: tick").minutes == 2
    assert "dunning: tick: updated" in out.getvalue()
    assert not Schedule.objects.filter(name="old job").exists()


def test_the_task_queue_never_catches_up_and_retries_later_than_its_timeout() -> None:
    cluster = settings.Q_CLUSTER
    assert cluster["catch_up"] is False
    assert cluster["retry"] > cluster["timeout"]
