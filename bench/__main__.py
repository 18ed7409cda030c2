"""``python -m bench [name ...]``: run the benchmarks (all by default) and print one table.

Each benchmark runs in its own process against its own PostgreSQL database (``dunning_bench_<name>`` on
127.0.0.1, created when missing), so their data sets never disturb each other. Generated data is kept
between runs and rebuilt only when its size is wrong; ``BENCH_FRESH=1`` forces a rebuild.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import time

import bench
from bench.harness import BENCH_DATABASE, Result, ensure_postgres_database, print_table

RESULT_MARKER = "BENCH-RESULTS "


# Run only when asked for by name (``make chaos``, ``make smart-sim``): runs of several minutes, not benchmarks.
ON_REQUEST = {"chaos", "smart_sim"}


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = available()
    wanted = argv or [name for name in names if name not in ON_REQUEST]
    unknown = set(wanted) - set(names)
    if unknown:
        print(f"Unknown benchmark(s): {', '.join(sorted(unknown))}. Available: {', '.join(names)}")
        return 2
    results: list[Result] = []
    failed: list[str] = []
    for name in wanted:
        print(f"[{name}]", flush=True)
        started = time.perf_counter()
        env = {
            **os.environ,
            # Tasks are enqueued for a task cluster, as in production, not run inline by the benchmark.
            "Q_SYNC": "0",
            "DATABASE_URL": ensure_postgres_database(f"{BENCH_DATABASE}_{name}"),
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
        }
        process = subprocess.run(
            [sys.executable, "-m", "bench.runner", name], env=env, stdout=subprocess.PIPE, text=True
        )
        for line in process.stdout.splitlines():
            if line.startswith(RESULT_MARKER):
                results.extend(Result(**row) for row in json.loads(line.removeprefix(RESULT_MARKER)))
            else:
                print(line, flush=True)
        if process.returncode != 0:
            failed.append(name)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    print_table(results)
    if failed:
        print(f"Failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
