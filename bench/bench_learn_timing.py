"""``learn_retry_timing`` over 10,000,000 settled tick retries, next to a bare GROUP BY over the same rows.

The data: 200,000 customers with one card each, 2,500,000 closed cases (recovered or exhausted) with 1 to 8
retries each (10,000,000 attempts in all, at most one success per invoice: the last retry of a recovered
case), and 100,000 customers with a year of paid invoices on a payday (most on a monthly day, some at
random) for the payday pass. Generated in SQL, kept between runs and rebuilt only when its size is wrong
(``BENCH_FRESH=1`` forces it).

Rows of the table:

- the baseline: ``SELECT retried_decline_code, COUNT(*) ... GROUP BY retried_decline_code`` with the same
  WHERE as the learn query (processed, settled tick retries), median of three runs on a warm cache;
- the counts pass alone on one connection (``count_rows_sql``: three combined grouping sets), the same;
- the whole rebuild without paydays (counts + model build + save), and the payday pass on its own;
- peak memory: ``ru_maxrss`` of a fresh process that sets Django up and runs the rebuild (or the payday
  pass), so nothing the benchmark itself allocated is counted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection

from bench.harness import Result, progress
from customers.models import Customer
from dunning.models import PaymentAttempt, PolicyVersion
from dunning.services.timing_learn import _where, count_rows_sql

CUSTOMERS = 200_000
PAYDAY_CUSTOMERS = 100_000
PAYDAY_MONTHS = 12
ATTEMPTS = 10_000_000
# Retries per case in a block of ten cases (mean 4): most cases end within a few retries, a few run long.
RETRIES_PER_CASE = (1, 1, 2, 3, 4, 4, 5, 6, 6, 8)
PER_BLOCK = sum(RETRIES_PER_CASE)
BLOCKS = ATTEMPTS // PER_BLOCK
CASES = BLOCKS * len(RETRIES_PER_CASE)
# Fixed, so a kept data set and a fresh one describe the same year.
NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
TARGET_RATIO = 3.0
TARGET_MB = 500

# (code, category, weight in %, chance that the last retry of a case succeeds before the payday effect)
DECLINES = [
    ("insufficient_funds", "soft", 40, 0.35),
    ("do_not_honor", "soft", 14, 0.30),
    ("generic_decline", "soft", 12, 0.28),
    ("card_velocity_exceeded", "soft", 5, 0.35),
    ("R01", "soft", 5, 0.40),
    ("R09", "soft", 2, 0.40),
    ("processing_error", "processing", 7, 0.70),
    ("issuer_not_available", "processing", 4, 0.65),
    ("try_again_later", "processing", 3, 0.65),
    ("expired_card", "hard", 5, 0.04),
    ("authentication_required", "authentication_required", 3, 0.05),
]
assert sum(weight for _, _, weight, _ in DECLINES) == 100
SEGMENTS = ["self_serve", "self_serve", "self_serve", "smb", "smb", "mid_market", "enterprise"]
COUNTRIES = ["US", "US", "US", "GB", "DE", "FR", "NL", "CA", "AU", "SE"]
FUNDING = ["debit", "debit", "debit", "credit", "credit", "prepaid", ""]
BRANDS = ["visa", "visa", "visa", "mastercard", "mastercard", "amex"]


def _weighted(values: list[str]) -> str:
    """An SQL array literal (values are ours, not user input)."""
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def _pick(values: list[str], key: str) -> str:
    """A deterministic pick from ``values`` by a hash of the SQL expression ``key``."""
    return f"({_weighted(values)})[1 + abs(hashint4(({key})::int)) %% {len(values)}]"


def _decline_arrays() -> tuple[str, str, str]:
    codes, categories, chances = [], [], []
    for code, category, weight, chance in DECLINES:
        codes += [code] * weight
        categories += [category] * weight
        chances += [str(chance)] * weight
    return _weighted(codes), _weighted(categories), "ARRAY[" + ", ".join(chances) + "]::float8[]"


def is_current() -> bool:
    return (
        os.environ.get("BENCH_FRESH") != "1"
        and PaymentAttempt.objects.count() == ATTEMPTS
        and Customer.objects.count() == CUSTOMERS
    )


def _step(label: str, sql: str, params: dict[str, object] | None = None) -> None:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
    progress(f"{label} ({time.perf_counter() - started:.0f} s)")


def populate() -> None:
    if is_current():
        progress(f"reusing {ATTEMPTS:,} attempts on {CASES:,} cases")
        return
    progress(f"generating {CUSTOMERS:,} customers, {CASES:,} closed cases, {ATTEMPTS:,} attempts")
    version = PolicyVersion.objects.get(policy__name="Default", number=1)
    codes, categories, chances = _decline_arrays()
    params: dict[str, object] = {"now": NOW, "customers": CUSTOMERS, "version": version.pk}
    _step(
        "emptied the tables",
        "TRUNCATE dunning_caseevent, dunning_paymentattempt, dunning_dunningcase, customers_auditevent, "
        "customers_invoice, customers_paymentmethod, customers_contact, customers_customer "
        "RESTART IDENTITY CASCADE",
    )
    # The rows are generated consistent (every id exists); foreign-key triggers would only add minutes.
    _step("foreign-key triggers off for this session", "SET session_replication_role = replica")
    _step(
        f"{CUSTOMERS:,} customers",
        f"""
        INSERT INTO customers_customer (external_id, name, email, company, segment, country, currency, locale,
            time_zone, gateway_customer_id, entitlement_state, created_at, updated_at)
        SELECT 'lt-' || g, 'Customer ' || g, 'billing-' || g || '@example.com', '', {_pick(SEGMENTS, "g")},
            {_pick(COUNTRIES, "g * 7")}, 'USD', 'en', 'UTC', 'cus_' || g, 'active', %(now)s, %(now)s
        FROM generate_series(1, %(customers)s) AS g
        """,
        params,
    )
    _step(
        f"{CUSTOMERS:,} cards",
        f"""
        INSERT INTO customers_paymentmethod (customer_id, type, brand, last4, exp_month, exp_year,
            gateway_payment_method_id, is_default, funding, country, created_at, updated_at)
        SELECT g, 'card', {_pick(BRANDS, "g * 13")}, '4242', 12, 2030, 'pm_lt_' || g, true,
            {_pick(FUNDING, "g * 11")}, {_pick(COUNTRIES, "g * 7")}, %(now)s, %(now)s
        FROM generate_series(1, %(customers)s) AS g
        """,
        params,
    )
    # Dunning invoices 1..CASES, failed on a day of the last year; exhausted (uncollectible) until the
    # attempts say otherwise.
    _step(
        f"{CASES:,} failed invoices",
        f"""
        INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
            status, due_at, lines, gateway, gateway_invoice_id, created_at, updated_at)
        SELECT 1 + (g - 1) %% %(customers)s, 'LT-' || g, (ARRAY[900, 2900, 4900, 9900, 29900, 150000])
            [1 + abs(hashint4(g * 3)) %% 6], 0, 'USD', 'uncollectible',
            %(now)s - make_interval(days => 30 + abs(hashint4(g)) %% 330, hours => abs(hashint4(g * 5)) %% 24),
            '[]'::jsonb, 'simulated', '', %(now)s, %(now)s
        FROM generate_series(1, {CASES}) AS g
        """,
        params,
    )
    _step(
        f"{CASES:,} closed cases",
        """
        INSERT INTO dunning_dunningcase (invoice_id, customer_id, policy_version_id, state, amount_minor,
            currency, opened_at, next_step_index, retry_count, schedule_shift_seconds, decline_code,
            decline_category, needs_staff_review, recovery_channel, closed_at, created_at, updated_at)
        SELECT id, customer_id, %(version)s, 'exhausted', amount_due_minor, 'USD', due_at, 0, 0, 0, '', '',
            false, '', due_at + interval '20 days', due_at, due_at
        FROM customers_invoice ORDER BY id
        """,
        params,
    )
    # Attempt ``a`` of block ``b``: case b*10 + offset, retry ``number``; retried two days apart, at a
    # random hour. The last retry of a case succeeds with its decline's chance, higher near a payday.
    # Secondary indexes are built once after the load (a sorted build) rather than row by row: the card
    # index alone turns the insert into random reads. The unique ones stay, so the constraints are checked.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'dunning_paymentattempt' "
            "AND indexname IN ('attempt_case_idx', 'attempt_method_time_idx')"
        )
        deferred = cursor.fetchall()
        for name, _ in deferred:
            cursor.execute(f'DROP INDEX "{name}"')
    offsets, numbers, lasts = [], [], []
    for offset, retries in enumerate(RETRIES_PER_CASE):
        for number in range(1, retries + 1):
            offsets.append(offset)
            numbers.append(number)
            lasts.append(number == retries)
    _step(
        f"{ATTEMPTS:,} settled tick retries",
        f"""
        INSERT INTO dunning_paymentattempt (invoice_id, case_id, payment_method_id, number, source, status,
            amount_minor, currency, gateway, gateway_reference, decline_processor, decline_code,
            decline_category, message, created_at, completed_at, step_index, processed, timing_mode,
            retried_decline_code, retried_decline_category, local_weekday, local_hour, local_day, payday_days,
            hours_since_failure, retry_number, card_funding, card_brand, amount_band, segment, country,
            predicted_success)
        SELECT s.invoice_id, s.invoice_id, s.customer_id, s.number + 1, 'retry',
            CASE WHEN s.succeeded THEN 'succeeded' ELSE 'failed' END, s.amount, 'USD', 'simulated', '',
            'stripe', CASE WHEN s.succeeded THEN '' ELSE s.code END,
            CASE WHEN s.succeeded THEN '' ELSE s.category END, '', s.at, s.at, s.number, true,
            CASE WHEN s.invoice_id %% 2 = 0 THEN 'smart' ELSE 'fixed' END, s.code, s.category,
            extract(isodow FROM s.at)::int - 1, extract(hour FROM s.at)::int, extract(day FROM s.at)::int,
            s.payday_days, s.hours, s.number, {_pick(FUNDING, "s.customer_id * 11")},
            {_pick(BRANDS, "s.customer_id * 13")}, CASE WHEN s.amount < 1000 THEN 0 WHEN s.amount < 5000
            THEN 1 WHEN s.amount < 20000 THEN 2 WHEN s.amount < 100000 THEN 3 ELSE 4 END,
            {_pick(SEGMENTS, "s.customer_id")}, {_pick(COUNTRIES, "s.customer_id * 7")},
            round(s.chance::numeric, 4)::float8
        FROM (
            SELECT t.*, t.last AND random() < t.chance AS succeeded
            FROM (
                SELECT d.*, least(0.95, (%(chances)s)[d.ci] * CASE WHEN d.payday_days <= 2 THEN 1.5
                    WHEN d.payday_days >= 14 THEN 0.8 ELSE 1.0 END) AS chance
                FROM (
                    SELECT c.*, (%(codes)s)[c.ci] AS code, (%(categories)s)[c.ci] AS category,
                        CASE WHEN c.customer_id %% 10 < 3 THEN NULL
                            ELSE (extract(day FROM c.at)::int - 1) %% 15 END AS payday_days
                    FROM (
                        SELECT i.id AS invoice_id, i.customer_id, i.amount_due_minor AS amount, p.number, p.last,
                            1 + abs(hashint4(i.id::int)) %% 100 AS ci, 2 + (abs(hashint4(i.id::int * p.number)) %% 70)
                                + 48 * (p.number - 1) AS hours,
                            i.due_at + make_interval(hours => 2 + (abs(hashint4(i.id::int * p.number)) %% 70)
                                + 48 * (p.number - 1)) AS at
                        FROM generate_series(0, {BLOCKS - 1}) AS b(block)
                        CROSS JOIN unnest(%(offsets)s::int[], %(numbers)s::int[], %(lasts)s::bool[])
                            AS p(offset_, number, last)
                        JOIN customers_invoice i ON i.id = b.block * {len(RETRIES_PER_CASE)} + p.offset_ + 1
                    ) c
                ) d
            ) t
        ) s
        """.replace("%(codes)s", codes)
        .replace("%(categories)s", categories)
        .replace("%(chances)s", chances),
        {"offsets": offsets, "numbers": numbers, "lasts": lasts},
    )
    for name, definition in deferred:
        _step(f"index {name}", definition)
    _step(
        "recovered cases: invoice paid by its last retry",
        """
        WITH paid AS (
            UPDATE customers_invoice i SET status = 'paid', amount_paid_minor = i.amount_due_minor,
                paid_at = a.completed_at
            FROM dunning_paymentattempt a
            WHERE a.invoice_id = i.id AND a.status = 'succeeded'
            RETURNING i.id, a.completed_at
        )
        UPDATE dunning_dunningcase c SET state = 'recovered', recovered_at = paid.completed_at,
            recovery_channel = 'silent_retry', recovered_amount_minor = c.amount_minor,
            closed_at = paid.completed_at
        FROM paid WHERE c.invoice_id = paid.id
        """,
    )
    # A year of subscription payments for the payday pass: two customers in three pay on their monthly
    # day (give or take a day), the others at random.
    _step(
        f"{PAYDAY_CUSTOMERS * PAYDAY_MONTHS:,} paid invoices on paydays",
        f"""
        INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
            status, due_at, paid_at, lines, gateway, gateway_invoice_id, created_at, updated_at)
        SELECT c, 'LTP-' || c || '-' || m, 4900, 4900, 'USD', 'paid', paid, paid, '[]'::jsonb, 'simulated', '',
            paid, paid
        FROM (
            SELECT c, m, CASE WHEN c %% 3 < 2
                THEN date_trunc('month', %(now)s::timestamptz - make_interval(months => m))
                    + make_interval(days => c %% 28 + abs(hashint4(c * m)) %% 3 - 1, hours => 12)
                ELSE %(now)s::timestamptz - make_interval(days => 30 * m + abs(hashint4(c * m)) %% 30)
                END AS paid
            FROM generate_series(1, {PAYDAY_CUSTOMERS}) AS c, generate_series(1, {PAYDAY_MONTHS}) AS m
        ) p
        """,
        params,
    )
    _step("foreign-key triggers back on", "SET session_replication_role = DEFAULT")
    for table in ("customers_customer", "customers_invoice", "dunning_dunningcase", "dunning_paymentattempt"):
        _step(f"VACUUM ANALYZE {table}", f"VACUUM ANALYZE {table}")


def _median_ms(action, repeat: int = 3) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), samples


def _baseline() -> None:
    where, params = _where()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT retried_decline_code, COUNT(*) FROM dunning_paymentattempt WHERE {where} "
            "GROUP BY retried_decline_code",
            params,
        )
        cursor.fetchall()


def _counts() -> None:
    from dunning.services.timing_learn import _count_rows

    list(_count_rows(workers=1))


# Run in a fresh interpreter: Django set up, then one pass; prints its peak RSS in MB (Linux: KiB).
_PEAK_SCRIPT = """
import json, resource, sys, time
from datetime import datetime
import django
django.setup()
from dunning.services.timing_learn import paydays_detect, retry_timing_learn
now = datetime.fromisoformat(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
if sys.argv[1] == "rebuild":
    retry_timing_learn(now=now, paydays=False)
else:
    paydays_detect(now=now)
print(json.dumps({"before": before, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - started}))
"""


def _peak(kind: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, kind, NOW.isoformat()],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run() -> list[Result]:
    from dunning.services.timing_learn import paydays_detect, retry_timing_learn

    populate()
    size = PaymentAttempt.objects.count()
    progress("warming the cache (one unmeasured scan)")
    _baseline()
    progress("measuring the bare GROUP BY baseline (3 runs)")
    baseline_ms, baseline_runs = _median_ms(_baseline)
    progress(f"baseline runs: {', '.join(f'{s / 1000:.1f} s' for s in baseline_runs)}")
    progress("measuring the counts pass on one connection (3 runs)")
    counts_ms, counts_runs = _median_ms(_counts)
    progress(f"counts pass runs: {', '.join(f'{s / 1000:.1f} s' for s in counts_runs)}")
    progress("measuring the whole rebuild, paydays=False (3 runs)")
    rebuild_ms, rebuild_runs = _median_ms(lambda: retry_timing_learn(now=NOW, paydays=False))
    progress(f"rebuild runs: {', '.join(f'{s / 1000:.1f} s' for s in rebuild_runs)}")
    progress("measuring the payday pass")
    payday_ms, _ = _median_ms(lambda: paydays_detect(now=NOW), repeat=1)
    with_payday = Customer.objects.filter(payday__isnull=False).count()
    progress("peak memory of a fresh process running the rebuild, then the payday pass")
    rebuild_peak = _peak("rebuild")
    payday_peak = _peak("paydays")
    plan = count_rows_sql()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + plan[0], plan[1])
        progress("counts plan: " + " / ".join(row[0].strip() for row in cursor.fetchall()[:4]))
    label = f"GROUP BY code, same WHERE, {size:,} rows"
    return [
        Result(f"bare GROUP BY retried_decline_code, {size:,} attempts", baseline_ms, None, "ms"),
        Result(
            "counts pass on one connection (3 grouping sets)",
            counts_ms,
            baseline_ms,
            "ms",
            label,
            note=f"target ≤ {TARGET_RATIO:.0f}×",
        ),
        Result(
            f"rebuild, paydays=False (counts on {settings.DUNNING_LEARN_WORKERS} connections + build + save)",
            rebuild_ms,
            baseline_ms,
            "ms",
            label,
            note=f"target ≤ {TARGET_RATIO:.0f}×",
        ),
        Result(
            f"payday pass ({PAYDAY_CUSTOMERS + CUSTOMERS:,} customers)",
            payday_ms,
            None,
            "ms",
            note=f"{with_payday:,} with a payday",
        ),
        Result(
            "peak RSS, fresh process, rebuild",
            rebuild_peak["peak"],
            None,
            "MB",
            f"target ≤ {TARGET_MB} MB",
            note=f"{rebuild_peak['before']:.0f} MB after django.setup(); ru_maxrss",
        ),
        Result(
            "peak RSS, fresh process, payday pass",
            payday_peak["peak"],
            None,
            "MB",
            f"target ≤ {TARGET_MB} MB",
            note=f"{payday_peak['before']:.0f} MB after django.setup(); ru_maxrss",
        ),
    ]
