"""The recovery dashboard at 250,000 cases and 1,000,000 attempts over 104 weeks (PostgreSQL, then SQLite).

Page rows are server time through Django's test client, in process (median of several requests), against
one bare GROUP BY over the same cases, measured in the same run. Also: the rollup reads alone, what the
rollup saves (the naive live query for one chart), and the refreshes the tick runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from bench.harness import Result, count_statements, median_ms, progress
from bench.reporting_data import ATTEMPTS, CASES, END, populate
from dunning.models import CaseEvent, CaseEventKind, DunningCase
from reporting import sql
from reporting.models import RefreshState
from reporting.selectors import ReportFilters
from reporting.selectors.filters import source
from reporting.services import rollups_refresh

LAST_DAY = (END - timedelta(days=1)).date()  # the data ends on Sunday 2026-11-15
RANGES = {
    "last 90 days (the default view)": (LAST_DAY - timedelta(days=89), LAST_DAY),
    "all 104 weeks": (LAST_DAY - timedelta(weeks=104) + timedelta(days=1), LAST_DAY),
}
FILTERED = "&segment=smb&currency=EUR&decline_category=soft"
SQLITE_FILE = Path(__file__).resolve().parent.parent / "var" / "bench" / "reporting.sqlite3"


def _url(start: date, end: date, extra: str = "") -> str:
    return f"/admin/reports/?start={start.isoformat()}&end={end.isoformat()}{extra}"


def _bare_group_by(start: date, end: date) -> float:
    """One bare GROUP BY over the cases the page reports on."""

    def query() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT currency, state, COUNT(*), SUM(amount_minor) FROM dunning_dunningcase "
                "WHERE opened_at >= %s AND opened_at < %s GROUP BY currency, state",
                [start, end + timedelta(days=1)],
            )
            cursor.fetchall()

    return median_ms(query, repeat=9)


def _statements(client: Client, url: str) -> int:
    def get() -> None:
        assert client.get(url).status_code == 200

    return count_statements(get)


def page_rows(client: Client, *, vendor: str, baseline: bool) -> list[Result]:
    results = []
    cases = [(label, _url(*bounds), bounds) for label, bounds in RANGES.items()] + [
        ("all 104 weeks, segment + currency + first decline", _url(*RANGES["all 104 weeks"], FILTERED), None)
    ]
    for label, url, bounds in cases:
        assert client.get(url).status_code == 200, url
        queries = _statements(client, url)
        ours = median_ms(lambda url=url: client.get(url), repeat=9)
        base = _bare_group_by(*bounds) if baseline and bounds else None
        results.append(
            Result(
                workload=f"dashboard page ({vendor}), {label}",
                ours=ours,
                baseline=base,
                unit="ms",
                baseline_label="bare GROUP BY over the same cases" if base else "",
                note=f"{queries} queries; target ≤ 250 ms",
            )
        )
    return results


def _rollup_reads() -> float:
    """The five additive queries of a whole-weeks range: they read the weekly rollup only."""
    filters = ReportFilters(start=date(2024, 11, 18), end=date(2026, 11, 15))  # Monday .. Sunday
    rows_from, params = source(filters)
    assert "reporting_casefact" not in rows_from

    def reads() -> None:
        with connection.cursor() as cursor:
            for query in (
                f"SELECT currency, {sql.measure_sums()} FROM ({rows_from}) s GROUP BY currency",
                f"SELECT {sql.measure_sums()} FROM ({rows_from}) s",
                f"SELECT week_start, currency, SUM(cases) FROM ({rows_from}) s GROUP BY week_start, currency",
                f"SELECT first_decline_category, first_decline_code, SUM(cases) FROM ({rows_from}) s GROUP BY 1, 2",
                f"SELECT policy_version_id, SUM(cases), SUM(messages_sent) FROM ({rows_from}) s GROUP BY 1",
            ):
                cursor.execute(query, params)
                cursor.fetchall()

    return median_ms(reads, repeat=9)


def _naive_retry_curve() -> float:
    """What one chart costs without the rollup: retry ranks straight from the million attempts."""

    def query() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT rank, COUNT(*), COUNT(*) FILTER (WHERE status = 'succeeded') FROM (
                    SELECT a.status, ROW_NUMBER() OVER (PARTITION BY a.case_id ORDER BY a.number) AS rank
                    FROM dunning_paymentattempt a JOIN dunning_dunningcase c ON c.id = a.case_id
                    WHERE a.source <> 'initial' AND a.status IN ('succeeded', 'failed')
                ) ranked GROUP BY rank
                """
            )
            cursor.fetchall()

    return median_ms(query, repeat=3, warmup=1)


def _tick_sized_change() -> float:
    """A busy tick's worth of changes (events on 1,000 recent cases), then the refresh the tick runs."""
    recent = list(DunningCase.objects.order_by("-opened_at").values_list("id", flat=True)[:1000])
    CaseEvent.objects.bulk_create(
        CaseEvent(case_id=case_id, kind=CaseEventKind.NOTE, actor_type="system", reason="bench")
        for case_id in recent
    )
    started = time.perf_counter()
    result = rollups_refresh()
    elapsed = (time.perf_counter() - started) * 1000
    assert not result.skipped and result.cases >= 1000
    return elapsed


def _client() -> Client:
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench-admin").first() or user_model.objects.create_superuser(
        "bench-admin", "bench@example.com", "bench-password"
    )
    client = Client()
    client.force_login(user)
    return client


def _vacuum() -> None:
    """What autovacuum does after a rebuild: statistics and the visibility map (index-only scans)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in (sql.FACT, sql.RECOVERY, sql.ROLLUP, sql.TOTALS):
                cursor.execute(f"VACUUM ANALYZE {table}")


def _sqlite_rows() -> list[Result]:
    """The same pages on SQLite, in a process of its own, on a copy of the same data set."""
    progress("SQLite: copying the data set (kept between runs) and measuring in a subprocess")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{SQLITE_FILE}",
        "BENCH_SOURCE_URL": os.environ["DATABASE_URL"],
    }
    process = subprocess.run(
        [sys.executable, "-m", "bench.reporting_sqlite"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    rows = []
    for line in process.stdout.splitlines():
        if line.startswith("SQLITE-RESULTS "):
            rows = [Result(**row) for row in json.loads(line.removeprefix("SQLITE-RESULTS "))]
        else:
            print(line, flush=True)
    if process.returncode != 0:
        raise RuntimeError("the SQLite part of the reporting benchmark failed")
    return rows


def run() -> list[Result]:
    populate()
    results: list[Result] = []
    state = RefreshState.objects.filter(pk=1).first()
    if os.environ.get("BENCH_FRESH") == "1" or state is None or state.rebuilt_at is None:
        progress("building the rollups")
        rollups_refresh(full=True)
    progress("full rebuild of the case facts and the weekly rollup")
    started = time.perf_counter()
    rebuilt = rollups_refresh(full=True)
    rebuild_s = time.perf_counter() - started
    _vacuum()
    rollups_refresh()  # settle the re-read windows
    client = _client()
    progress("dashboard pages")
    results += page_rows(client, vendor="PostgreSQL", baseline=True)
    results.append(
        Result(
            workload="rollup reads only (5 additive queries, 104 whole weeks)",
            ours=_rollup_reads(),
            baseline=None,
            unit="ms",
            note="target ≤ 20 ms",
        )
    )
    results.append(
        Result(
            workload="retry curve straight from the 1M attempts (no rollup)",
            ours=_naive_retry_curve(),
            baseline=None,
            unit="ms",
            note="one chart, live: what the rollup avoids",
        )
    )
    progress("refreshes")
    idle = median_ms(rollups_refresh, repeat=9)
    results.append(
        Result("refresh when nothing changed (every idle tick)", idle, None, "ms", note="two small queries")
    )
    change_ms = _tick_sized_change()
    results.append(
        Result(
            "refresh after a tick changed 1,000 cases",
            change_ms,
            None,
            "ms",
            note="their facts, plus the re-read window, and their weeks",
        )
    )
    results.append(
        Result(
            f"full rebuild, {CASES:,} cases / {ATTEMPTS:,} attempts",
            rebuild_s * 1000,
            None,
            "ms",
            note=f"{rebuilt.cases:,} facts, {rebuilt.weeks} weeks; nightly and refresh_reports --full",
        )
    )
    if os.environ.get("BENCH_REPORTING_SQLITE", "1") != "0":
        results += _sqlite_rows()
    return results
