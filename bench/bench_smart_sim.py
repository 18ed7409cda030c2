"""``make smart-sim`` (``python -m bench smart_sim``): smart retry timing against the fixed Default schedule.

The simulation of ``bench/smart_sim.py`` in the world of ``bench/smart_world.py`` (whose docstring lists
the assumptions): a learning phase on the fixed Default v1, then the same 2,000 failed invoices (twins) run
once on the fixed Default v1 and once on the smart Default v2, with the real tick. ``SMART_SIM_CUSTOMERS``
changes the population.
"""

from __future__ import annotations

import os

from bench.harness import Result, progress
from bench.smart_sim import SimConfig, report_lines, run_smart_sim

CONFIG = SimConfig(customers=int(os.environ.get("SMART_SIM_CUSTOMERS", 2000)))


def run() -> list[Result]:
    report = run_smart_sim(CONFIG, progress=progress)
    print(flush=True)
    for line in report_lines(report):
        print(f"  {line}", flush=True)
    fixed, smart = report.arms["F"], report.arms["S"]
    low, high = report.lift[1], report.lift[2]
    n = f"{CONFIG.customers:,} twin invoices"
    return [
        Result(
            workload=f"smart sim: recovered value by retry, {n}",
            ours=smart.value_eur,
            baseline=fixed.value_eur,
            unit="EUR",
            baseline_label="fixed Default v1",
            note=f"smart Default v2; lift {report.lift[0]:+.1%}, 95 % interval [{low:+.1%}, {high:+.1%}]",
            better="higher",
        ),
        Result(
            workload="smart sim: invoices recovered by retry",
            ours=smart.recovered,
            baseline=fixed.recovered,
            unit="invoices",
            baseline_label="fixed Default v1",
            note=(
                f"difference {report.diff_recovered[0]:+.0f} [{report.diff_recovered[1]:+.0f}, "
                f"{report.diff_recovered[2]:+.0f}]"
            ),
            better="higher",
        ),
        Result(
            workload="smart sim: retry charges sent",
            ours=smart.charges,
            baseline=fixed.charges,
            unit="charges",
            baseline_label="fixed Default v1",
            note=f"{smart.skipped_threshold} smart retries skipped by the threshold",
        ),
        Result(
            workload="smart sim: recovered value per charge",
            ours=smart.per_charge,
            baseline=fixed.per_charge,
            unit="EUR",
            baseline_label="fixed Default v1",
            better="higher",
        ),
        Result(
            workload="smart sim: calibration, smart arm's charges",
            ours=100 * sum(smart.succeeded) / max(len(smart.succeeded), 1),
            baseline=100 * sum(smart.predicted) / max(len(smart.predicted), 1),
            unit="% success",
            baseline_label="mean predicted",
            note="actual vs predicted success at send time",
        ),
    ]
