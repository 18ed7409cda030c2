"""The figures of the metrics endpoint that must be written down as they happen: every tick adds its counts
(``dunning.signals.tick_finished``), in whichever process it runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import connection, transaction

from reporting.models import OperationsFigure

# Tick summary keys that say the gateway gave no usable answer, and the error kind they count as.
GATEWAY_ERROR_KINDS = {".unknown": "no_answer", "reconcile.unreachable": "truth_query_failed"}


def gateway_error_kind(key: str) -> str | None:
    """``retry.unknown`` (any ``<source>.unknown``) -> ``no_answer``; ``reconcile.unreachable`` ->
    ``truth_query_failed``; other keys are not gateway errors."""
    for suffix, kind in GATEWAY_ERROR_KINDS.items():
        if key.endswith(suffix):
            return kind
    return None


def _upsert(figures: Mapping[str, float], *, now: datetime, add: bool) -> None:
    """One statement for any number of figures: added to (counters) or replaced (gauges). Concurrent ticks
    in other processes add atomically: ``INSERT … ON CONFLICT DO UPDATE`` (PostgreSQL and SQLite)."""
    if not figures:
        return
    table = connection.ops.quote_name(OperationsFigure._meta.db_table)
    new_value = f"{table}.value + excluded.value" if add else "excluded.value"
    placeholders = ", ".join(["(%s, %s, %s)"] * len(figures))
    params: list[object] = []
    for name, value in sorted(figures.items()):
        params += [name, float(value), now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, value, updated_at) VALUES {placeholders} "
            f"ON CONFLICT (name) DO UPDATE SET value = {new_value}, updated_at = excluded.updated_at",
            params,
        )


def tick_figures_record(
    *, counts: Mapping[str, int], cases: int, duration_seconds: float | None, finished_at: datetime
) -> None:
    """Add one finished tick to the counters and make it the last tick: two statements, whatever the tick."""
    added: dict[str, float] = {"ticks": 1, "tick_cases": cases}
    for kind, count in counts.items():
        if count:
            added[f"tick_actions:{kind}"] = count
            error_kind = gateway_error_kind(kind)
            if error_kind:
                added[f"gateway_errors:{error_kind}"] = added.get(f"gateway_errors:{error_kind}", 0) + count
    last: dict[str, float] = {"last_tick_finished_at": finished_at.timestamp(), "last_tick_cases": cases}
    if duration_seconds is not None:
        added.update(timed_ticks=1, tick_seconds=duration_seconds)
        last["last_tick_duration_seconds"] = duration_seconds
    with transaction.atomic():
        _upsert(added, now=finished_at, add=True)
        _upsert(last, now=finished_at, add=False)
