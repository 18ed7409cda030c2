"""The dunning tick: 100k open cases, 20k due, against one hand-written UPDATE per 500-row chunk.

Row one uses the simulated gateway with no latency (its ledger in memory, so the figure is our engine's,
not the fake processor's). Row two puts 200 ms of latency on every charge and compares throughput with the
pool's ceiling (workers / latency).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.test.utils import override_settings
from django.utils import timezone

from bench.harness import Result, progress
from dunning.gateways.simulated import SimulatedGateway, _MemoryLedger
from dunning.models import DunningCase, PolicyVersion
from dunning.services.tick import run_tick

# The engine's own figures: reporting's refresh after a tick is measured by bench_reporting; here it would
# rebuild the report tables of freshly generated cases inside the timing.
ENGINE_ONLY = {"REPORTING_REFRESH_AFTER_TICK": False}
OPEN_CASES = 100_000
DUE_CASES = 20_000
CUSTOMERS = 50_000


def _populate(now: datetime) -> None:
    """Fresh data for every measurement (the tick changes it): generated in SQL in a few seconds."""
    version = PolicyVersion.objects.get(policy__name="Default", number=1)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Failed two days ago at 10:00: the day-1 09:00 retry (step 2) is due, the day-3 email is not.
    opened_due = day_start - timedelta(days=2) + timedelta(hours=10)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE dunning_caseevent, dunning_paymentattempt, dunning_dunningcase, customers_auditevent, "
            "customers_invoice, customers_paymentmethod, customers_contact, customers_customer RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            """
            INSERT INTO customers_customer (external_id, name, email, company, segment, currency, locale, time_zone,
                gateway_customer_id, entitlement_state, created_at, updated_at)
            SELECT 'b-' || g, 'Customer ' || g, 'billing-' || g || '@example.com', '', 'smb', 'EUR', 'en', 'UTC', 'cus_' || g, 'past_due', %s, %s
            FROM generate_series(1, %s) AS g
            """,
            [now, now, CUSTOMERS],
        )
        # 30 % of the cards succeed on retry (…4242), the rest are declined for insufficient funds (…9995).
        cursor.execute(
            """
            INSERT INTO customers_paymentmethod (customer_id, type, brand, last4, exp_month, exp_year,
                gateway_payment_method_id, is_default, created_at, updated_at)
            SELECT g, 'card', 'visa', '', 12, 2030,
                CASE WHEN g %% 10 < 3 THEN 'pm_sim_4242424242424242' ELSE 'pm_sim_4000000000009995' END, true, %s, %s
            FROM generate_series(1, %s) AS g
            """,
            [now, now, CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency, status,
                due_at, lines, gateway, gateway_invoice_id, created_at, updated_at)
            SELECT 1 + (g - 1) %% %s, 'B-' || g, 4900, 0, 'EUR', 'open', %s, '[]'::jsonb, 'simulated', '', %s, %s
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS, opened_due, now, now, OPEN_CASES],
        )
        cursor.execute(
            """
            INSERT INTO dunning_dunningcase (invoice_id, customer_id, policy_version_id, state, amount_minor, currency,
                opened_at, next_step_index, next_action_at, retry_count, schedule_shift_seconds, decline_code,
                decline_category, needs_staff_review, recovery_channel, created_at, updated_at)
            SELECT g, 1 + (g - 1) %% %s, %s, 'open', 4900, 'EUR',
                CASE WHEN g <= %s THEN %s ELSE %s END, 2,
                CASE WHEN g <= %s THEN %s ELSE %s END,
                0, 0, 'insufficient_funds', 'soft', false, '', %s, %s
            FROM generate_series(1, %s) AS g
            """,
            [
                CUSTOMERS,
                version.pk,
                DUE_CASES,
                opened_due,
                now - timedelta(hours=2),
                DUE_CASES,
                now - timedelta(hours=1),
                now + timedelta(days=1),
                now,
                now,
                OPEN_CASES,
            ],
        )
        cursor.execute(
            """
            INSERT INTO dunning_paymentattempt (invoice_id, case_id, payment_method_id, number, source, status,
                amount_minor, currency, gateway, gateway_reference, decline_processor, decline_code, decline_category,
                message, created_at, completed_at)
            SELECT g, g, 1 + (g - 1) %% %s, 1, 'initial', 'failed', 4900, 'EUR', 'simulated', '', 'stripe',
                'insufficient_funds', 'soft', '', %s, %s
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS, opened_due, opened_due, OPEN_CASES],
        )
        for table in (
            "customers_customer",
            "customers_invoice",
            "dunning_dunningcase",
            "dunning_paymentattempt",
        ):
            cursor.execute(f"ANALYZE {table}")


class _Counters:
    """Statements and commits on every connection of the process (tick workers each have their own):
    explicit commits plus statements run in autocommit mode, each of which commits by itself."""

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[None]:
        real_execute, real_commit = CursorWrapper._execute, BaseDatabaseWrapper.commit

        def execute(cursor: CursorWrapper, sql: str, params: object, *wrappers: object) -> object:
            with self._lock:
                self.statements += 1
                self.commits += cursor.db.get_autocommit() and not cursor.db.in_atomic_block
            return real_execute(cursor, sql, params, *wrappers)

        def commit(database: BaseDatabaseWrapper) -> None:
            with self._lock:
                self.commits += 1
            real_commit(database)

        CursorWrapper._execute, BaseDatabaseWrapper.commit = execute, commit  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            CursorWrapper._execute, BaseDatabaseWrapper.commit = real_execute, real_commit  # type: ignore[method-assign]


def _measure(
    now: datetime, gateway: SimulatedGateway, limit: int | None = None
) -> tuple[float, int, _Counters]:
    counters = _Counters()
    with counters.counting():
        started = time.perf_counter()
        summary = run_tick(now=now, gateway=gateway, limit=limit)
        elapsed = time.perf_counter() - started
    actions = sum(n for key, n in summary.counts.items() if key.startswith("retry."))
    return elapsed, actions, counters


def _baseline(now: datetime) -> float:
    """One hand-written statement per 500-row chunk: move every due case one step on."""
    started = time.perf_counter()
    moved = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                """
                UPDATE dunning_dunningcase SET next_step_index = next_step_index + 1, next_action_at = %s,
                    retry_count = retry_count + 1, updated_at = %s
                WHERE id IN (SELECT id FROM dunning_dunningcase WHERE state = 'open' AND next_action_at <= %s
                             ORDER BY next_action_at, id LIMIT 500)
                """,
                [now + timedelta(days=2), now, now],
            )
            if cursor.rowcount == 0:
                break
            moved += cursor.rowcount
    return moved / (time.perf_counter() - started)


def _parallel_ticks(now: datetime, *, processes: int) -> float:
    """Several `run_dunning` processes over the same due cases, as on several machines."""
    import os
    import subprocess
    import sys

    from django.db import connections

    connections.close_all()
    env = {
        **os.environ,
        "SIMULATED_GATEWAY_LEDGER": "memory",
        "DUNNING_GATEWAY_CONCURRENCY": "8",
        "REPORTING_REFRESH_AFTER_TICK": "false",
    }
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_dunning", "--now", now.isoformat()],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    for process in running:
        if process.wait() != 0:
            raise RuntimeError("a tick process failed")
    return time.perf_counter() - started


def _smart_version() -> PolicyVersion:
    """The Default policy with its day-1 retry (step 2) made smart over a 2-day window."""
    default = PolicyVersion.objects.get(policy__name="Default", number=1)
    steps = [dict(step) for step in default.steps]
    steps[2] = {**steps[2], "timing": "smart", "window_days": 2}
    version, _ = PolicyVersion.objects.update_or_create(
        policy=default.policy,
        number=900,
        defaults={
            "steps": steps,
            "max_retries": default.max_retries,
            "network_retry_cap": default.network_retry_cap,
            "grace_period_days": default.grace_period_days,
            "notes": "bench: smart day-1 retry",
        },
    )
    return version


def _smart_rows(now: datetime, baseline: float) -> list[Result]:
    """The same 20k due retries with smart timing: the pass that picks each case's slot (model, window,
    spacing, explanation), then the pass that charges at the slots."""
    progress("generating again; smart timing: slots chosen, then retries at their slots")
    _populate(now)
    _MemoryLedger.reset()
    version = _smart_version()
    DunningCase.objects.filter(policy_version__number=1).update(policy_version=version)
    rows = []
    with override_settings(**ENGINE_ONLY, DUNNING_GATEWAY_CONCURRENCY=8):
        elapsed, actions, counters = _measure(now, SimulatedGateway(ledger="memory", rules=[]))
        label = "tick with smart steps, 2 workers: choosing 20k slots"
        rows.append(_row(label, actions, elapsed, counters, baseline))
        # Only the 20k smart cases: the others wait beyond every chosen slot.
        chosen = DunningCase.objects.filter(retry_timing__has_key="step")
        later = max(chosen.values_list("next_action_at", flat=True))
        DunningCase.objects.exclude(retry_timing__has_key="step").update(
            next_action_at=later + timedelta(days=5)
        )
        elapsed, actions, counters = _measure(later, SimulatedGateway(ledger="memory", rules=[]))
        label = "tick with smart steps, 2 workers: 20k retries at their slots"
        rows.append(_row(label, actions, elapsed, counters, baseline))
    return rows


def _row(label: str, actions: int, elapsed: float, counters: _Counters, baseline: float) -> Result:
    per_thousand = 1000 / max(actions, 1)
    return Result(
        workload=label,
        ours=actions / elapsed,
        baseline=baseline,
        unit="actions/s",
        baseline_label="UPDATE per 500-row chunk",
        note=(
            f"{actions:,} actions in {elapsed:.1f} s; per 1,000 actions: "
            f"{counters.statements * per_thousand:.1f} statements, {counters.commits * per_thousand:.1f} commits"
        ),
        better="higher",
    )


def run() -> list[Result]:
    now = timezone.now()
    results: list[Result] = []

    progress(f"generating {OPEN_CASES:,} open cases ({DUE_CASES:,} due)")
    _populate(now)
    baseline = _baseline(now)

    batch_size = settings.DUNNING_BATCH_SIZE
    for workers in (1, settings.DUNNING_TICK_WORKERS):
        progress(f"generating again; tick with batch size {batch_size}, {workers} worker(s)")
        _populate(now)
        _MemoryLedger.reset()
        with override_settings(
            **ENGINE_ONLY,
            DUNNING_BATCH_SIZE=batch_size,
            DUNNING_GATEWAY_CONCURRENCY=8,
            DUNNING_TICK_WORKERS=workers,
        ):
            elapsed, actions, counters = _measure(now, SimulatedGateway(ledger="memory", rules=[]))
        per_thousand = 1000 / max(actions, 1)
        results.append(
            Result(
                workload=(
                    f"tick, 20k due retries of 100k open, no latency, batch {batch_size}, "
                    f"{workers} worker{'s' if workers > 1 else ''} in one process"
                ),
                ours=actions / elapsed,
                baseline=baseline,
                unit="actions/s",
                baseline_label="UPDATE per 500-row chunk",
                note=(
                    f"{actions:,} actions in {elapsed:.1f} s; per 1,000 actions: "
                    f"{counters.statements * per_thousand:.1f} statements, {counters.commits * per_thousand:.1f} commits"
                ),
                better="higher",
            )
        )

    results.extend(_smart_rows(now, baseline))

    progress("generating again; two tick processes in parallel")
    _populate(now)
    elapsed = _parallel_ticks(now, processes=2)
    results.append(
        Result(
            workload=f"… the same with 2 tick processes of {settings.DUNNING_TICK_WORKERS} workers in parallel",
            ours=DUE_CASES / elapsed,
            baseline=baseline,
            unit="actions/s",
            baseline_label="UPDATE per 500-row chunk",
            note=f"{DUE_CASES:,} actions in {elapsed:.1f} s on 2 cores shared with PostgreSQL",
            better="higher",
        )
    )

    progress("generating again; tick with 200 ms gateway latency (800 due cases)")
    _populate(now)
    _MemoryLedger.reset()
    workers, latency_ms, limit = 8, 200, 800
    with override_settings(**ENGINE_ONLY, DUNNING_GATEWAY_CONCURRENCY=workers):
        elapsed, actions, _ = _measure(
            now, SimulatedGateway(ledger="memory", latency_ms=latency_ms, rules=[]), limit
        )
    ceiling = workers / (latency_ms / 1000)
    results.append(
        Result(
            workload=f"tick, 200 ms gateway latency, pool of {workers}",
            ours=actions / elapsed,
            baseline=ceiling,
            unit="actions/s",
            baseline_label="pool ceiling workers/latency",
            note=f"{actions} retries in {elapsed:.1f} s; target ≥ 80 % of the ceiling",
            better="higher",
        )
    )
    return results
