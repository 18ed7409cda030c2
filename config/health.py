"""Health probes.

- ``GET /healthz``: readiness of the whole system, as JSON, 200 when every check passes and 503 otherwise:
  the database answers, the task broker answers, the cache works, the django-q2 scheduler is keeping its
  schedules (none overdue by more than ``HEALTHZ_TICK_MAX_AGE_MINUTES``), and a dunning tick finished within
  that time. For monitors and deploy checks.
- ``GET /healthz/live``: liveness only (the process answers; no database), for load balancers, which must
  not take every web server out because the task cluster stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_q.models import Schedule

from reporting.selectors.operations import last_tick_finished_at


def _max_age() -> timedelta:
    return timedelta(minutes=settings.HEALTHZ_TICK_MAX_AGE_MINUTES)


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


def check_broker() -> dict[str, Any]:
    from django_q.brokers import get_broker

    broker = get_broker()
    return {"ok": bool(broker.ping()), "broker": broker.info()}


def check_cache() -> dict[str, Any]:
    key = f"healthz:{time.monotonic_ns()}"
    cache.set(key, "1", 10)
    found = cache.get(key) == "1"
    cache.delete(key)
    return {"ok": found, "backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def check_scheduler() -> dict[str, Any]:
    now = timezone.now()
    repeating = Schedule.objects.exclude(repeats=0)
    if not repeating.exists():
        return {"ok": False, "error": "no schedules installed: run python manage.py sync_schedules"}
    late = repeating.filter(next_run__lt=now - _max_age()).order_by("next_run").first()
    if late is None:
        return {"ok": True, "schedules": repeating.count()}
    behind = int((now - late.next_run).total_seconds())
    return {
        "ok": False,
        "error": f"schedule {late.name!r} is {behind} s overdue: is a qcluster process running?",
        "overdue_seconds": behind,
    }


def check_tick() -> dict[str, Any]:
    finished = last_tick_finished_at()
    if finished is None:
        return {"ok": False, "error": "no dunning tick has finished yet"}
    age = (timezone.now() - finished).total_seconds()
    return {
        "ok": age <= _max_age().total_seconds(),
        "last_tick_at": finished.isoformat(),
        "age_seconds": int(age),
        "max_age_seconds": int(_max_age().total_seconds()),
    }


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": check_database,
    "broker": check_broker,
    "cache": check_cache,
    "scheduler": check_scheduler,
    "tick": check_tick,
}


def run_checks() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        if name in ("scheduler", "tick") and not results["database"]["ok"]:
            results[name] = {"ok": False, "error": "skipped: the database is unreachable"}
            continue
        try:
            results[name] = check()
        except Exception as error:  # noqa: BLE001 - a probe reports every failure, it never raises
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    return results


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    results = run_checks()
    healthy = all(result["ok"] for result in results.values())
    response = JsonResponse(
        {"status": "ok" if healthy else "failing", "checks": results}, status=200 if healthy else 503
    )
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def live(request: HttpRequest) -> HttpResponse:
    """The process answers: no database access, never cached."""
    response = HttpResponse("ok", content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response
