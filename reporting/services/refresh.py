"""Keeping the case facts, recovery times, weekly rollup and weekly totals up to date: the only writer.

The tick calls :func:`rollups_refresh` when it finishes (``dunning.signals.tick_finished``), so the reports
are correct after every tick; staff can also refresh from the dashboard, and ``refresh_reports --full``
rebuilds everything. A refresh redoes only the cases that may have changed since the last one:

- cases with a new case event: every change to a case writes one (opened, attempt results, state changes),
  and event ids only grow, whatever time the writer thinks it is. Events are read again from
  ``EVENT_SLACK`` ids below the last one seen, because ids are handed out before commit: a transaction that
  took a lower id may commit just after the last refresh looked;
- cases with a customer message sent since the last refresh (the dispatcher sends after the tick);
- cases of customers changed since then (a segment edit or an import);
- cases created without any event (bulk loads).
Sends and customer changes carry wall-clock times, so the next refresh reads them from ``TIME_MARGIN`` before
this one started (the margin covers transactions still open meanwhile). Then the weeks those cases opened
in are summed again from the facts.

Before any of that, one query compares the latest ids and times, and how many rows fall in each re-read
window, with what the last refresh stored: when nothing moved, the refresh does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from reporting import sql
from reporting.models import DirtyCase, RefreshState

EVENT_SLACK = 10_000
TIME_MARGIN = timedelta(minutes=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVENT = sql.EVENT
DIRTY = DirtyCase._meta.db_table


@dataclass(frozen=True)
class RefreshResult:
    skipped: bool
    full: bool = False
    cases: int = 0
    weeks: int = 0
    duration_ms: int = 0


@dataclass(frozen=True)
class _Marks:
    """What the sources look like now: the latest id or time of each, and the rows in each re-read window."""

    event_high: int
    event_window_count: int
    sent_high: datetime | None
    sent_window_count: int
    customer_high: datetime | None
    customer_window_count: int
    case_high: int

    def matches(self, state: RefreshState) -> bool:
        return (
            self.event_high == state.event_high
            and self.event_window_count == state.event_window_count
            and self.sent_high == state.sent_high
            and self.sent_window_count == state.sent_window_count
            and self.customer_high == state.customer_high
            and self.customer_window_count == state.customer_window_count
            and self.case_high == state.case_high
        )


def _marks(*, event_low: int, sent_low: datetime | None, customer_low: datetime | None) -> _Marks:
    """One statement, so that every figure comes from the same snapshot."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT
                (SELECT MAX(id) FROM {EVENT}),
                (SELECT COUNT(*) FROM {EVENT} WHERE id > %s),
                (SELECT MAX(sent_at) FROM {sql.NOTIFICATION} WHERE case_ref IS NOT NULL AND sent_at IS NOT NULL),
                (SELECT COUNT(*) FROM {sql.NOTIFICATION}
                 WHERE case_ref IS NOT NULL AND sent_at IS NOT NULL AND sent_at >= %s),
                (SELECT MAX(updated_at) FROM {sql.CUSTOMER}),
                (SELECT COUNT(*) FROM {sql.CUSTOMER} WHERE updated_at >= %s),
                (SELECT MAX(id) FROM {sql.CASE})
            """,
            [event_low, sql.param(sent_low or EPOCH), sql.param(customer_low or EPOCH)],
        )
        row = cursor.fetchone()
    return _Marks(
        event_high=row[0] or 0,
        event_window_count=row[1],
        sent_high=_aware(row[2]),
        sent_window_count=row[3],
        customer_high=_aware(row[4]),
        customer_window_count=row[5],
        case_high=row[6] or 0,
    )


def _aware(value: datetime | str | None) -> datetime | None:
    """Raw SQL on SQLite returns text for MAX() over a datetime column; PostgreSQL returns aware values."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rollups_refresh(*, full: bool = False, now: datetime | None = None) -> RefreshResult:
    """Bring the case facts and the weekly rollup up to date; ``full`` rebuilds them from scratch.

    Concurrent refreshes queue on the state row's lock. Readers keep seeing the previous figures until the
    refresh commits.
    """
    started = time.perf_counter()
    state = RefreshState.objects.filter(pk=1).first()
    if not full and state is not None and state.refreshed_at is not None:
        marks = _marks(event_low=state.event_low, sent_low=state.sent_low, customer_low=state.customer_low)
        if marks.matches(state):
            return RefreshResult(skipped=True)
    now = now or timezone.now()
    RefreshState.objects.get_or_create(pk=1)
    with transaction.atomic():
        state = RefreshState.objects.select_for_update().get(pk=1)
        full = full or state.refreshed_at is None
        # New windows first, then their counts, then the work list: every row counted below is also in
        # the work list, which is read later and so sees at least as much.
        current = _marks(event_low=state.event_low, sent_low=state.sent_low, customer_low=state.customer_low)
        lows = {
            "event_low": max(current.event_high - EVENT_SLACK, 0),
            # Wall-clock sources: next time, from a margin before this refresh started (a transaction
            # that stamped its rows before then may still commit after this refresh has read).
            "sent_low": now - TIME_MARGIN,
            "customer_low": now - TIME_MARGIN,
        }
        marks = _marks(**lows)
        if full:
            cases, weeks = _rebuild()
            state.rebuilt_at = now
        else:
            cases, weeks = _refresh_changed(state)
        for name, value in lows.items():
            setattr(state, name, value)
        for name in (
            "event_high",
            "event_window_count",
            "sent_high",
            "sent_window_count",
            "customer_high",
            "customer_window_count",
            "case_high",
        ):
            setattr(state, name, getattr(marks, name))
        duration_ms = int((time.perf_counter() - started) * 1000)
        state.refreshed_at = now
        state.last_cases = cases
        state.last_duration_ms = duration_ms
        state.save()
    return RefreshResult(skipped=False, full=full, cases=cases, weeks=weeks, duration_ms=duration_ms)


def _rebuild() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {sql.FACT}", [])
        cursor.execute(
            f"INSERT INTO {sql.FACT} ({', '.join(sql.FACT_COLUMNS)}) {sql.fact_select('1 = 1')}", []
        )
        cases = cursor.rowcount
        cursor.execute(f"DELETE FROM {sql.RECOVERY}", [])
        cursor.execute(sql.recovery_insert("1 = 1"), [])
        cursor.execute(f"DELETE FROM {sql.ROLLUP}", [])
        cursor.execute(sql.rollup_insert("1 = 1"), [])
        cursor.execute(f"DELETE FROM {sql.TOTALS}", [])
        cursor.execute(sql.totals_insert("1 = 1"), [])
        cursor.execute(f"SELECT COUNT(DISTINCT week_start) FROM {sql.ROLLUP}", [])
        weeks = cursor.fetchone()[0]
        if connection.vendor == "postgresql":
            # Every row is new: give the planner real statistics now rather than at autovacuum's leisure.
            cursor.execute(f"ANALYZE {sql.FACT}", [])
            cursor.execute(f"ANALYZE {sql.RECOVERY}", [])
            cursor.execute(f"ANALYZE {sql.ROLLUP}", [])
            cursor.execute(f"ANALYZE {sql.TOTALS}", [])
    return cases, weeks


def _refresh_changed(state: RefreshState) -> tuple[int, int]:
    """Recompute the facts of the cases that may have changed, then the weeks they opened in."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {DIRTY} (case_id)
            SELECT case_id FROM {EVENT} WHERE id > %s
            UNION
            SELECT case_ref FROM {sql.NOTIFICATION}
            WHERE case_ref IS NOT NULL AND sent_at IS NOT NULL AND sent_at >= %s
            UNION
            SELECT c.id FROM {sql.CASE} c JOIN {sql.CUSTOMER} cu ON cu.id = c.customer_id
            WHERE cu.updated_at >= %s
            UNION
            SELECT id FROM {sql.CASE} WHERE id > %s
            """,
            [
                state.event_low,
                sql.param(state.sent_low or EPOCH),
                sql.param(state.customer_low or EPOCH),
                state.case_high,
            ],
        )
        if connection.vendor == "postgresql":
            # Its size changes from nothing to thousands inside this transaction: without statistics the
            # planner would scan every case and fact rather than look up the ones listed.
            cursor.execute(f"ANALYZE {DIRTY}", [])
        in_dirty = f"IN (SELECT case_id FROM {DIRTY})"
        # Weeks before and after: a case that vanished (only ever in tests) still leaves its week to redo.
        weeks = set(_dirty_weeks(cursor, in_dirty))
        cursor.execute(f"DELETE FROM {sql.FACT} WHERE case_id {in_dirty}", [])
        cursor.execute(
            f"INSERT INTO {sql.FACT} ({', '.join(sql.FACT_COLUMNS)}) {sql.fact_select(f'c.id {in_dirty}')}",
            [],
        )
        cases = cursor.rowcount
        cursor.execute(f"DELETE FROM {sql.RECOVERY} WHERE case_id {in_dirty}", [])
        cursor.execute(sql.recovery_insert(f"f.case_id {in_dirty}"), [])
        weeks.update(_dirty_weeks(cursor, in_dirty))
        _rebuild_weeks(cursor, sorted(weeks))
        cursor.execute(f"DELETE FROM {DIRTY}", [])
    return cases, len(weeks)


def _dirty_weeks(cursor: CursorWrapper, in_dirty: str) -> list[date]:
    cursor.execute(f"SELECT DISTINCT opened_week FROM {sql.FACT} WHERE case_id {in_dirty}", [])
    return [_as_date(row[0]) for row in cursor.fetchall()]


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _rebuild_weeks(cursor: CursorWrapper, weeks: Sequence[date]) -> None:
    # A few weeks per tick; chunked so that a catch-up over years stays within parameter limits.
    for start in range(0, len(weeks), 200):
        chunk = list(weeks[start : start + 200])
        placeholders = ", ".join(["%s"] * len(chunk))
        params = [sql.param(week) for week in chunk]
        cursor.execute(f"DELETE FROM {sql.ROLLUP} WHERE week_start IN ({placeholders})", params)
        cursor.execute(sql.rollup_insert(f"f.opened_week IN ({placeholders})"), params)
        cursor.execute(f"DELETE FROM {sql.TOTALS} WHERE week_start IN ({placeholders})", params)
        cursor.execute(sql.totals_insert(f"r.week_start IN ({placeholders})"), params)
