"""Operations: the Prometheus endpoint (protected; figures that move after a tick, from any process), the
/healthz readiness probe, and JSON logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule
from prometheus_client.parser import text_string_to_metric_families

from dunning.models import GatewayCircuit, SimulatedGatewayRule, StripeEvent
from dunning.tasks import run_dunning_tick
from reporting.models import OperationsFigure
from tests.factories import failed_invoice

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]
TOKEN = "metrics-scraper-token-0123456789"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _token(settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = TOKEN


def scrape(client: Client | None = None, token: str | None = TOKEN) -> dict[tuple[str, tuple], float]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


# --- /metrics ---------------------------------------------------------------------------------------------


def test_metrics_need_the_token_or_a_staff_member_who_may_read_the_reports(staff_user) -> None:  # type: ignore[no-untyped-def]
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    staff = Client()
    staff.force_login(staff_user)
    assert staff.get("/metrics").status_code == 401
    staff_user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    assert "dunning_due_cases" in {name for name, _ in scrape(staff, token=None)}
    assert "dunning_due_cases" in {name for name, _ in scrape()}


def test_without_a_configured_token_no_token_opens_it(settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_the_figures_move_after_a_tick() -> None:
    for _ in range(3):
        failed_invoice(failed_at=timezone.now() - timedelta(hours=1))
    before = scrape()
    assert _value(before, "dunning_ticks_total") == 0
    assert _value(before, "dunning_due_cases") == 3
    assert _value(before, "dunning_due_oldest_age_seconds") > 0
    assert _value(before, "dunning_last_tick_timestamp_seconds") == 0

    run_dunning_tick()  # the scheduled task, as the cluster runs it

    after = scrape()
    assert _value(after, "dunning_ticks_total") == 1
    assert _value(after, "dunning_tick_cases_total") == 3
    assert _value(after, "dunning_last_tick_cases") == 3
    assert _value(after, "dunning_tick_actions_total", kind="email") == 3
    assert _value(after, "dunning_tick_actions_total", kind="banner") == 3
    assert _value(after, "dunning_due_cases") == 0
    assert _value(after, "dunning_due_oldest_age_seconds") == 0
    assert _value(after, "dunning_tick_duration_seconds_count") == 1
    assert (
        0
        < _value(after, "dunning_tick_duration_seconds_sum")
        == _value(after, "dunning_last_tick_duration_seconds")
    )
    assert abs(_value(after, "dunning_last_tick_timestamp_seconds") - timezone.now().timestamp()) < 60

    run_dunning_tick()  # nothing due: counted, and the counters only ever grow
    again = scrape()
    assert _value(again, "dunning_ticks_total") == 2
    assert _value(again, "dunning_tick_actions_total", kind="email") == 3


def test_gateway_errors_are_counted_by_kind_and_unknown_attempts_shown() -> None:
    case, _, _ = failed_invoice(failed_at=timezone.now() - timedelta(days=3))
    SimulatedGatewayRule.objects.create(customer_external_id=case.customer.external_id, fault="timeout")
    call_command("run_dunning", "--now", (timezone.now() + timedelta(days=2)).isoformat(), stdout=StringIO())
    figures = scrape()
    assert _value(figures, "dunning_gateway_errors_total", kind="no_answer") == 1
    assert _value(figures, "dunning_attempts_unknown") == 1
    assert _value(figures, "dunning_tick_actions_total", kind="retry.unknown") == 1
    assert _value(figures, "dunning_tick_duration_seconds_count") == 1  # run_dunning is timed too


def test_inbox_lag_flags_and_failures_come_from_the_tables() -> None:
    StripeEvent.objects.create(
        event_id="evt_waiting",
        type="invoice.paid",
        payload={},
        received_at=timezone.now() - timedelta(minutes=10),
    )
    StripeEvent.objects.create(event_id="evt_bad", type="invoice.paid", payload={}, status="failed")
    GatewayCircuit.objects.create(gateway="simulated", state="open")
    figures = scrape()
    assert _value(figures, "dunning_stripe_inbox_pending") == 1
    assert 600 <= _value(figures, "dunning_stripe_inbox_lag_seconds") < 700
    assert _value(figures, "dunning_stripe_inbox_failed") == 1
    assert _value(figures, "dunning_gateway_circuits_open") == 1
    assert _value(figures, "dunning_double_payments_open") == 0


# --- /healthz ---------------------------------------------------------------------------------------------


def _health() -> tuple[int, dict]:
    response = Client().get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, response.json()


def test_healthz_fails_until_schedules_are_installed_and_a_tick_ran() -> None:
    status, body = _health()
    assert status == 503 and body["status"] == "failing"
    assert (
        body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"] and body["checks"]["cache"]["ok"]
    )
    assert "sync_schedules" in body["checks"]["scheduler"]["error"]
    assert body["checks"]["tick"] == {"ok": False, "error": "no dunning tick has finished yet"}

    call_command("sync_schedules", stdout=StringIO())
    run_dunning_tick()
    status, body = _health()
    assert (status, body["status"]) == (200, "ok"), body
    assert body["checks"]["tick"]["age_seconds"] < 60


def test_healthz_fails_when_the_tick_or_the_scheduler_is_late(settings) -> None:  # type: ignore[no-untyped-def]
    settings.HEALTHZ_TICK_MAX_AGE_MINUTES = 15
    call_command("sync_schedules", stdout=StringIO())
    run_dunning_tick()
    OperationsFigure.objects.filter(name="last_tick_finished_at").update(
        value=(timezone.now() - timedelta(minutes=16)).timestamp()
    )
    status, body = _health()
    assert status == 503
    assert body["checks"]["tick"]["ok"] is False and body["checks"]["tick"]["age_seconds"] >= 16 * 60
    assert body["checks"]["scheduler"]["ok"] is True
    Schedule.objects.filter(name="dunning: tick").update(next_run=timezone.now() - timedelta(minutes=20))
    status, body = _health()
    assert "'dunning: tick'" in body["checks"]["scheduler"]["error"]


def test_the_liveness_probe_needs_nothing() -> None:
    response = Client().get("/healthz/live")
    assert (response.status_code, response.content) == (200, b"ok")


# --- JSON logs -----------------------------------------------------------------------------------------------


def test_json_logs_are_one_object_per_line_with_tokens_redacted() -> None:
    code = (
        "import logging; logging.getLogger('dunning.test').warning('opened /portal/%s/ twice', 'eyJabc.def:ghi');"
        "logging.getLogger('dunning.test').error('boom', exc_info=ValueError('bad'))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(e["level"], e["logger"]) for e in lines] == [
        ("WARNING", "dunning.test"),
        ("ERROR", "dunning.test"),
    ]
    assert lines[0]["message"] == "opened /portal/[redacted]/ twice"
    assert "ValueError: bad" in lines[1]["exception"]


def test_a_scrape_runs_the_same_queries_whatever_the_number_of_rows() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    failed_invoice(failed_at=timezone.now() - timedelta(hours=1))
    run_dunning_tick()
    with CaptureQueriesContext(connection) as few:
        scrape()
    for _ in range(4):
        failed_invoice(failed_at=timezone.now() - timedelta(hours=1))
    run_dunning_tick()
    with CaptureQueriesContext(connection) as more:
        scrape()
    assert len(few) == len(more) <= 16


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("dunning_seeds")
def test_a_tick_in_another_process_moves_the_figures_every_process_reads() -> None:
    from django.db import connection, connections

    failed_invoice(failed_at=timezone.now() - timedelta(hours=1))
    conf = connection.settings_dict
    url = f"postgres://{conf['USER'] or 'postgres'}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"
    if conf["PASSWORD"]:
        url = url.replace("@", f":{conf['PASSWORD']}@", 1)
    connections.close_all()
    done = subprocess.run(
        [sys.executable, "manage.py", "run_dunning"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    figures = scrape()  # this process never ran a tick
    assert _value(figures, "dunning_ticks_total") == 1
    assert _value(figures, "dunning_tick_actions_total", kind="email") == 1
    assert _value(figures, "dunning_tick_duration_seconds_count") == 1
    assert _value(figures, "dunning_due_cases") == 0
