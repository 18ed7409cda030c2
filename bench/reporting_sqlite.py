"""The reporting benchmark's SQLite half, run by bench_reporting in a process of its own.

It copies the PostgreSQL data set (``BENCH_SOURCE_URL``) into the SQLite file of ``DATABASE_URL`` once (kept
between runs, copied again when the sizes differ or with ``BENCH_FRESH=1``), rebuilds the rollups there and
measures the same dashboard pages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any

import django


def _value(value: Any) -> Any:
    """A PostgreSQL value as Django stores it in SQLite."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    return value


def _copy(models: list[Any], source_url: str) -> None:
    import psycopg
    from django.db import connection, transaction

    from bench.harness import progress

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys = OFF")
    with psycopg.connect(source_url) as source, transaction.atomic():
        for model in models:
            table = model._meta.db_table
            columns = [field.column for field in model._meta.concrete_fields]
            names = ", ".join(columns)
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table}")
            copied = 0
            with source.cursor(name=f"copy_{table}") as rows:
                rows.itersize = 20_000
                rows.execute(f"SELECT {names} FROM {table} ORDER BY id")
                while batch := rows.fetchmany(20_000):
                    with connection.cursor() as cursor:
                        cursor.executemany(
                            f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})",
                            [[_value(v) for v in row] for row in batch],
                        )
                    copied += len(batch)
            progress(f"SQLite: {table}: {copied:,} rows")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    django.setup()
    from django.core.management import call_command
    from django.db.models import Sum

    from bench.bench_reporting import SQLITE_FILE, _client, page_rows
    from bench.harness import Result, progress
    from bench.reporting_data import ATTEMPTS, CASES
    from customers.models import Customer, Invoice
    from dunning.models import DunningCase, DunningPolicy, PaymentAttempt, PolicyStep, PolicyVersion
    from notifications.models import Notification
    from reporting.models import CaseFact, WeeklyRollup, WeeklyTotals
    from reporting.services import rollups_refresh

    SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    current = (
        os.environ.get("BENCH_FRESH") != "1"
        and DunningCase.objects.count() == CASES
        and PaymentAttempt.objects.count() == ATTEMPTS
    )
    if current:
        progress(f"SQLite: reusing {SQLITE_FILE}")
    else:
        PolicyStep.objects.all().delete()
        _copy(
            [Customer, DunningPolicy, PolicyVersion, Invoice, DunningCase, PaymentAttempt, Notification],
            os.environ["BENCH_SOURCE_URL"],
        )
    # Rebuilt when the data was copied again, or when a table of the rollups does not hold every case.
    summed = [model.objects.aggregate(n=Sum("cases"))["n"] for model in (WeeklyRollup, WeeklyTotals)]
    rebuild_ms = None
    if not current or summed != [CASES, CASES] or CaseFact.objects.count() != CASES:
        progress("SQLite: full rebuild of the rollups")
        started = time.perf_counter()
        rollups_refresh(full=True)
        rebuild_ms = (time.perf_counter() - started) * 1000
    rollups_refresh()
    results = page_rows(_client(), vendor="SQLite", baseline=True)
    if rebuild_ms is not None:
        results.append(
            Result(f"full rebuild (SQLite), {CASES:,} cases / {ATTEMPTS:,} attempts", rebuild_ms, None, "ms")
        )
    print("SQLITE-RESULTS " + json.dumps([dataclasses.asdict(r) for r in results]), flush=True)


if __name__ == "__main__":
    main()
