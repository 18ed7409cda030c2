"""Rebuilding the retry-timing model from the installation's own retries, set-based (``learn_retry_timing``).

Two passes, each a single statement streamed from the database:

1. **Counts.** Every processed tick retry carries the situation it was sent in (``smart_timing``), so one
   scan groups them by decline code and each feature at once: ``GROUPING SETS`` on PostgreSQL (one pass
   over the table however many features), a ``UNION ALL`` of small ``GROUP BY``s on SQLite. The rows
   are thousands, whatever the table's size; the pure model buckets and shrinks them.
2. **Paydays.** The local dates of each customer's successful payments, for customers with enough of
   them, ordered by customer and read in chunks: one customer's dates in memory at a time. A detected
   pattern is written on the customer, one UPDATE per chunk; a pattern that no longer stands out is
   cleared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from customers.models import Customer, Invoice, InvoiceStatus
from dunning.models import AttemptSource, AttemptStatus, PaymentAttempt, RetryTimingModel
from dunning.timing.features import FEATURES
from dunning.timing.model import TimingModel
from dunning.timing.payday import detect_payday

# Feature name -> the attempt column it is counted from.
FEATURE_COLUMNS: dict[str, str] = {
    "weekday": "local_weekday",
    "hour": "local_hour",
    "day_of_month": "local_day",
    "payday_days": "payday_days",
    "hours_since_failure": "hours_since_failure",
    "retry_number": "retry_number",
    "funding": "card_funding",
    "brand": "card_brand",
    "amount_band": "amount_band",
    "segment": "segment",
    "country": "country",
}
assert tuple(FEATURE_COLUMNS) == FEATURES, "one column per model feature, in the model's order"

SUCCESSFUL = (AttemptStatus.SUCCEEDED, AttemptStatus.DUPLICATE)
KEPT_MODELS = 30
PAYDAY_MIN_PAYMENTS = 4
PAYDAY_CHUNK = 2_000
# Paydays are read from the last year of payments: habits change.
PAYDAY_LOOKBACK_DAYS = 400

Progress = Callable[[str], None]


def _where(id_range: tuple[int, int] | None = None) -> tuple[str, list[object]]:
    where = "source = %s AND processed AND status IN (%s, %s, %s) AND retried_decline_code <> ''"
    params: list[object] = [
        AttemptSource.RETRY,
        AttemptStatus.SUCCEEDED,
        AttemptStatus.FAILED,
        AttemptStatus.DUPLICATE,
    ]
    if id_range is not None:
        # A range of the table's pages: PostgreSQL reads only those (TID range scan), so parts read disjoint
        # halves of the table instead of each scanning all of it to filter ids. The last part is open-ended.
        first, last = id_range
        where += " AND ctid >= %s::tid" + (" AND ctid < %s::tid" if last >= 0 else "")
        params += [f"({first},0)"] + ([f"({last},0)"] if last >= 0 else [])
    return where, params


# Features counted together, one grouping set each: three hash tables per row instead of eleven (the scan
# was 9× a bare GROUP BY with one set per feature), each still small because raw values are bucketed in
# SQL to one representative per level first. Python adds each set's rows up per feature.
COMBINED_SETS: tuple[tuple[str, ...], ...] = (
    ("weekday", "hour", "funding", "retry_number"),
    ("day_of_month", "payday_days", "hours_since_failure"),
    ("brand", "amount_band", "segment", "country"),
)
assert sorted(f for group in COMBINED_SETS for f in group) == sorted(FEATURES), "every feature counted once"

# One representative raw value per level (see dunning.timing.features.level): 3-hour blocks, payday days
# 0, 1, 2, 3-6, 7-13, 14+, hours since failure <6, 6-24, 24-72, 72-168, 168+, retry 1, 2, 3, 4+.
BUCKETED: dict[str, str] = {
    "hour": "(local_hour / 3) * 3",
    "payday_days": "CASE WHEN payday_days IS NULL THEN NULL WHEN payday_days < 3 THEN payday_days WHEN payday_days < 7 THEN 3 "
    "WHEN payday_days < 14 THEN 7 ELSE 14 END",
    "hours_since_failure": "CASE WHEN hours_since_failure IS NULL THEN NULL WHEN hours_since_failure < 6 THEN 0 WHEN hours_since_failure < 24 THEN 6 "
    "WHEN hours_since_failure < 72 THEN 24 WHEN hours_since_failure < 168 THEN 72 ELSE 168 END",
    "retry_number": "CASE WHEN retry_number > 4 THEN 4 ELSE retry_number END",
}


def _expression(feature: str) -> str:
    return BUCKETED.get(feature, FEATURE_COLUMNS[feature])


def count_rows_sql(id_range: tuple[int, int] | None = None) -> tuple[str, list[object]]:
    """The statement behind pass 1: rows of (code, category, set index, the set's bucketed values...,
    attempts, successes); a set's unused value columns are NULL."""
    table = PaymentAttempt._meta.db_table
    where, params = _where(id_range)
    success = "SUM(CASE WHEN status IN (%s, %s) THEN 1 ELSE 0 END)"
    success_params: list[object] = list(SUCCESSFUL)
    keys = "retried_decline_code, retried_decline_category"
    if connection.vendor == "postgresql":
        columns = [f"v{i}_{j}" for i, group in enumerate(COMBINED_SETS) for j in range(len(group))]
        inner = ", ".join(
            f"{_expression(feature)} AS v{i}_{j}"
            for i, group in enumerate(COMBINED_SETS)
            for j, feature in enumerate(group)
        )
        sets = ", ".join(
            f"({keys}, {', '.join(f'v{i}_{j}' for j in range(len(group)))})"
            for i, group in enumerate(COMBINED_SETS)
        )
        # GROUPING(first column of each set): 0 marks the set a row belongs to. The values come back in
        # every set's own columns (types differ between sets); the reader takes the row's set.
        which = " + ".join(
            f"CASE WHEN GROUPING(v{i}_0) = 0 THEN {i} ELSE 0 END" for i in range(len(COMBINED_SETS))
        )
        return (
            f"SELECT {keys}, {which}, {', '.join(columns)}, COUNT(*), SUM(success) FROM ("
            f"SELECT {keys}, {inner}, CASE WHEN status IN (%s, %s) THEN 1 ELSE 0 END AS success "
            f"FROM {table} WHERE {where}) AS retries GROUP BY GROUPING SETS ({sets})",
            [*success_params, *params],
        )
    parts, all_params = [], []
    for i, group in enumerate(COMBINED_SETS):
        # The same layout as PostgreSQL's: every set's columns, this set's filled.
        values = [
            _expression(feature) if k == i else "NULL"
            for k, other in enumerate(COMBINED_SETS)
            for feature in other
        ]
        parts.append(
            f"SELECT {keys}, {i}, {', '.join(values)}, COUNT(*), {success} FROM {table} WHERE {where} "
            f"GROUP BY {keys}, {', '.join(_expression(feature) for feature in group)}"
        )
        all_params += [*success_params, *params]
    return " UNION ALL ".join(parts), all_params


# PostgreSQL: the hash tables of the three sets fit in memory (about 40 MB at 10M retries); at the default
# 4 MB the planner sorts two sets on disk and the pass took four times as long.
COUNT_WORK_MEM = "256MB"


def _count_part(id_range: tuple[int, int] | None) -> list[tuple[object, ...]]:
    sql, params = count_rows_sql(id_range)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"SET LOCAL work_mem = '{COUNT_WORK_MEM}'")
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    finally:
        if id_range is not None:
            connection.close()  # this worker thread's own connection


def _id_ranges(parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges of the attempts table's pages (from the planner's page count; the last range is
    open-ended, so pages added since are counted too): (first page, end page or -1)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relpages FROM pg_class WHERE oid = %s::regclass", [PaymentAttempt._meta.db_table]
        )
        row = cursor.fetchone()
    pages = int(row[0]) if row and row[0] and row[0] > 0 else 0
    if pages < parts:
        return [(0, -1)]
    step = -(-pages // parts)
    starts = list(range(0, pages, step))
    return [(start, starts[i + 1] if i + 1 < len(starts) else -1) for i, start in enumerate(starts)]


def _count_rows(workers: int = 1) -> Iterator[tuple[str, str, str, object, int, int]]:
    """Rows for ``TimingModel.from_raw_counts``: (code, category, feature, raw value, attempts, successes);
    feature "" holds each code's totals (from the first set, whose rows cover every retry once).

    On PostgreSQL with ``workers`` > 1 the table is split into that many ranges of pages, each counted on
    its own connection at the same time (PostgreSQL runs no grouping sets in parallel by itself); the rows of
    the parts add up like any others.
    """
    if connection.vendor == "postgresql" and workers > 1 and not connection.in_atomic_block:
        ranges = _id_ranges(workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rows = [row for part in pool.map(_count_part, ranges) for row in part]
    else:
        rows = _count_part(None)
    for row in rows:
        code, category, which = str(row[0]), str(row[1]), int(row[2])  # type: ignore[call-overload]
        attempts, successes = int(row[-2]), int(row[-1])  # type: ignore[call-overload]
        group = COMBINED_SETS[which]
        if which == 0:
            yield code, category, "", None, attempts, successes
        offset = 3 + sum(len(other) for other in COMBINED_SETS[:which])
        for feature, raw in zip(group, row[offset : offset + len(group)], strict=True):
            yield code, category, feature, raw, attempts, successes


def _payday_dates(now: datetime) -> Iterator[tuple[int, str, list[date]]]:
    """(customer id, time zone, local dates of paid invoices), customer by customer, for customers with
    enough paid invoices in the lookback period. Paid invoices include every successful retry (a success
    pays its invoice) and invoices that never failed, which carry most of the payday signal."""
    invoices, customers = Invoice._meta.db_table, Customer._meta.db_table
    since = now - timedelta(days=PAYDAY_LOOKBACK_DAYS)
    sql = f"""
        SELECT c.id, c.time_zone, i.paid_at
        FROM {invoices} i JOIN {customers} c ON c.id = i.customer_id
        WHERE i.status = %s AND i.paid_at >= %s AND i.customer_id IN (
            SELECT customer_id FROM {invoices} WHERE status = %s AND paid_at >= %s
            GROUP BY customer_id HAVING COUNT(*) >= %s
        )
        ORDER BY c.id, i.paid_at
    """
    current: int | None = None
    zone_name, dates = "UTC", []
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, [InvoiceStatus.PAID, since, InvoiceStatus.PAID, since, PAYDAY_MIN_PAYMENTS])
        while rows := cursor.fetchmany(10_000):
            for customer_id, time_zone, paid_at in rows:
                if customer_id != current:
                    if current is not None:
                        yield current, zone_name, dates
                    current, zone_name, dates = customer_id, time_zone, []
                if isinstance(paid_at, str):  # SQLite through a raw cursor
                    paid_at = datetime.fromisoformat(paid_at)
                if paid_at.tzinfo is None:
                    paid_at = paid_at.replace(tzinfo=UTC)
                dates.append(paid_at.astimezone(_zone(zone_name)).date())
    if current is not None:
        yield current, zone_name, dates


_zones: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _zones.get(name)
    if zone is None:
        zone = _zones[name] = ZoneInfo(name)
    return zone


def _write_paydays(patterns: dict[int, dict[str, object] | None]) -> None:
    by_value: dict[str, list[int]] = {}
    values: dict[str, dict[str, object] | None] = {}
    for customer_id, pattern in patterns.items():
        key = repr(sorted(pattern.items())) if pattern else ""
        by_value.setdefault(key, []).append(customer_id)
        values[key] = pattern
    with transaction.atomic():
        for key, ids in by_value.items():
            Customer.objects.filter(pk__in=ids).update(payday=values[key])


def paydays_detect(*, now: datetime, progress: Progress | None = None) -> int:
    """Pass 2: detect and store each customer's payday; returns how many customers have one."""
    found = 0
    pending: dict[int, dict[str, object] | None] = {}
    for seen, (customer_id, _zone_name, dates) in enumerate(_payday_dates(now), start=1):
        pattern = (
            detect_payday(dates, min_events=PAYDAY_MIN_PAYMENTS)
            if len(dates) >= PAYDAY_MIN_PAYMENTS
            else None
        )
        pending[customer_id] = pattern.to_json() if pattern else None
        found += pattern is not None
        if len(pending) >= PAYDAY_CHUNK:
            _write_paydays(pending)
            pending = {}
            if progress:
                progress(f"paydays: {seen:,} customers read, {found:,} with a pattern")
    if pending:
        _write_paydays(pending)
    return found


def retry_timing_learn(
    *, now: datetime, progress: Progress | None = None, paydays: bool = True
) -> RetryTimingModel:
    """Rebuild the model (and the customers' paydays) and keep it as the newest ``RetryTimingModel``."""
    started = time.perf_counter()
    with_payday = paydays_detect(now=now, progress=progress) if paydays else 0
    if progress:
        progress("counting retries by decline code and feature")
    rows = list(_count_rows(workers=settings.DUNNING_LEARN_WORKERS))
    model = TimingModel.from_raw_counts(rows, built_at=now)
    attempts = sum(row[4] for row in rows if row[2] == "")
    record = RetryTimingModel.objects.create(
        built_at=now,
        attempts_counted=attempts,
        customers_with_payday=with_payday,
        duration_seconds=round(time.perf_counter() - started, 3),
        model=model.to_json(),
    )
    stale = RetryTimingModel.objects.order_by("-built_at", "-pk").values_list("pk", flat=True)[KEPT_MODELS:]
    RetryTimingModel.objects.filter(pk__in=list(stale)).delete()
    return record
