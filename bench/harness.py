"""A small benchmark harness: timing helpers, a PostgreSQL database to fill, and one results table."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "dunning_bench")
PG_SERVER_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")


@dataclass(frozen=True)
class Result:
    workload: str
    ours: float
    baseline: float | None
    unit: str
    baseline_label: str = ""
    note: str = ""
    # "higher" for throughput (rows/s), "lower" for latency (ms): decides how the ratio reads.
    better: str = "lower"

    @property
    def ratio(self) -> str:
        if not self.baseline:
            return "–"
        value = self.ours / self.baseline
        return f"{value:.2f}×"


def median_ms(action: Callable[[], object], *, repeat: int = 15, warmup: int = 2) -> float:
    """Median wall time of ``action`` in milliseconds, after a few unmeasured warm-up calls."""
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def count_statements(action: Callable[[], object]) -> int:
    """How many SQL statements ``action`` sends over the default connection."""
    from django.db import connection

    statements = 0

    def record(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        action()
    return statements


def ensure_postgres_database(name: str = BENCH_DATABASE) -> str:
    """Create the benchmark database if it is missing; return its URL."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER_URL}/postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER_URL}/{name}"


def format_number(value: float, unit: str) -> str:
    if unit in ("rows/s", "actions/s"):
        return f"{value:,.0f} {unit}"
    if unit == "queries":
        return f"{value:.0f} {unit}"
    return f"{value:,.1f} {unit}"


def print_table(results: list[Result]) -> None:
    headers = ["workload", "ours", "baseline (same run)", "ratio", "note"]
    rows = [
        [
            r.workload,
            format_number(r.ours, r.unit),
            (
                f"{format_number(r.baseline, r.unit)} ({r.baseline_label})"
                if r.baseline
                else r.baseline_label or "–"
            ),
            r.ratio,
            r.note,
        ]
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print()
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    print()


def progress(message: str) -> None:
    print(f"  … {message}", flush=True)
