"""``make chaos`` (``python -m bench chaos``): the production scenario of ``bench/chaos.py`` at scale.

2,000 failed invoices over 12 simulated days; 4 tick processes of 2 workers; a gateway with 300 ms of
latency, 30 % faults and failing truth queries, rate-limited so that a batch's charges outlast the claim
lease; staff retries, portal payments and wire payments racing the ticks; one tick killed mid-batch. The
figures are checked against the simulated processor's ledger; any problem fails the run.
"""

from __future__ import annotations

import os

from bench.chaos import ChaosConfig, run_chaos
from bench.harness import Result, progress

CONFIG = ChaosConfig(
    customers=int(os.environ.get("CHAOS_CUSTOMERS", 2000)),
    days=12,
    step_hours=24,
    latency_ms=300,
    # 25 requests/s per process: a batch of 250 takes 10 s to charge, longer than the 5 s lease.
    rate_limit=25,
    batch_size=250,
    lease_seconds=5,
    kill_round=1,
)


def run() -> list[Result]:
    report = run_chaos(CONFIG, progress=progress)
    for line in report.lines():
        print(f"  {line}", flush=True)
    problems = report.problems()
    if problems:
        raise SystemExit("chaos found problems: " + "; ".join(problems))
    return [
        Result(
            workload=(
                f"chaos: {CONFIG.processes} tick processes × {CONFIG.workers} workers, {CONFIG.chaos:.0%} gateway "
                f"faults, {CONFIG.latency_ms} ms, {CONFIG.customers:,} invoices"
            ),
            ours=report.throughput,
            baseline=CONFIG.processes * CONFIG.rate_limit,
            unit="actions/s",
            baseline_label="gateway ceiling: processes × rate limit",
            note=(
                f"{report.ledger_charges:,} charges; {report.double_charged_invoices} invoices charged twice; "
                f"{report.double_payment_flags} flags for {report.real_double_payments} real double payments; "
                f"{report.killed} killed, {len(report.failed_processes)} died"
            ),
            better="higher",
        )
    ]
