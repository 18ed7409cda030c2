"""``learn_retry_timing``: counts by decline code and feature from the tick's own retries (GROUPING SETS on
PostgreSQL, UNION ALL on SQLite: the same answer), paydays from paid invoices, the nightly schedule."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from customers.models import Invoice, InvoiceStatus
from dunning.models import AttemptSource, AttemptStatus, PaymentAttempt, RetryTimingModel
from dunning.schedules import schedules
from dunning.services.smart_timing import current_model
from dunning.timing.model import TimingModel
from dunning.timing.payday import PaydayPattern
from tests.factories import CustomerFactory, InvoiceFactory, failed_invoice

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _attempts(rows: list[dict[str, object]]) -> None:
    """One settled attempt per row, each on its own failed invoice (an invoice is paid once)."""
    attempts = []
    for row in rows:
        case, invoice, _method = failed_invoice(failed_at=NOW - timedelta(days=5))
        attempts.append(
            PaymentAttempt(
                invoice=invoice,
                case=case,
                number=2,
                amount_minor=4900,
                currency="EUR",
                gateway="simulated",
                created_at=NOW - timedelta(days=3),
                completed_at=NOW - timedelta(days=3),
                **{
                    "source": AttemptSource.RETRY,
                    "processed": True,
                    "retried_decline_code": "insufficient_funds",
                    "retried_decline_category": "soft",
                    "local_weekday": 1,
                    "local_hour": 14,
                    "local_day": 12,
                    "retry_number": 1,
                    "card_funding": "debit",
                    "amount_band": 1,
                    **row,
                },
            )
        )
    PaymentAttempt.objects.bulk_create(attempts)


def test_the_model_counts_processed_tick_retries_by_code_and_feature() -> None:
    friday = {"local_weekday": 4, "local_hour": 9}
    _attempts(
        [{**friday, "status": AttemptStatus.SUCCEEDED}] * 10
        + [{**friday, "status": AttemptStatus.FAILED}] * 20
        + [{"status": AttemptStatus.SUCCEEDED}] * 14
        + [{"status": AttemptStatus.DUPLICATE}]  # money moved: a success
        + [{"status": AttemptStatus.FAILED}] * 5
        # Not learnt from: not processed, still pending, a staff retry, a processing-error code elsewhere.
        + [{"status": AttemptStatus.FAILED, "processed": False}] * 7
        + [{"status": AttemptStatus.FAILED, "source": AttemptSource.STAFF}] * 3
        + [
            {
                "status": AttemptStatus.FAILED,
                "retried_decline_code": "processing_error",
                "retried_decline_category": "processing",
                "payday_days": 0,
            }
        ]
        * 4,
    )
    out = StringIO()
    call_command("learn_retry_timing", "--now", NOW.isoformat(), stdout=out, stderr=StringIO())
    assert "Learnt from 54 retries" in out.getvalue()
    record = RetryTimingModel.objects.get()
    model = TimingModel.from_json(record.model)
    counts = model.counts
    assert counts[("insufficient_funds", "", "")] == (50, 25)
    assert counts[("insufficient_funds", "weekday", "fri")] == (30, 10)
    assert counts[("insufficient_funds", "weekday", "tue")] == (20, 15)
    assert counts[("insufficient_funds", "funding", "debit")] == (50, 25)
    assert counts[("insufficient_funds", "payday_days", "unknown")] == (50, 25)
    assert counts[("processing_error", "", "")] == (4, 0)
    assert model.categories["processing_error"] == "processing"
    # Every feature's levels add up to the code's total: one grouping set per feature, nothing lost.
    for feature in ("weekday", "hour", "day_of_month", "retry_number", "amount_band", "country"):
        total = [v for (code, f, _), v in counts.items() if code == "insufficient_funds" and f == feature]
        assert sum(a for a, _ in total) == 50 and sum(s for _, s in total) == 25, feature
    # The engine reads the newest model; the learnt counts move its estimate off the priors.
    assert current_model().counts == counts


def test_paydays_are_found_from_paid_invoices_and_noise_finds_none() -> None:
    monthly = CustomerFactory(time_zone="America/New_York")
    noisy = CustomerFactory(time_zone="UTC")
    rng = random.Random(7)
    for month in range(1, 11):
        paid = datetime(2026, month, 15, 14, 0, tzinfo=UTC)
        InvoiceFactory(customer=monthly, status=InvoiceStatus.PAID, paid_at=paid, amount_paid_minor=4900)
        random_day = datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(days=rng.randrange(0, 330))
        InvoiceFactory(customer=noisy, status=InvoiceStatus.PAID, paid_at=random_day, amount_paid_minor=4900)
    out = StringIO()
    call_command("learn_retry_timing", "--now", NOW.isoformat(), stdout=out, stderr=StringIO())
    monthly.refresh_from_db()
    noisy.refresh_from_db()
    pattern = PaydayPattern.from_json(monthly.payday)
    assert (pattern.kind, pattern.days) == ("monthly", (15,))
    assert pattern.last_payday_on_or_before(date(2026, 12, 20)) == date(2026, 12, 15)
    assert noisy.payday is None
    assert RetryTimingModel.objects.get().customers_with_payday == 1
    assert Invoice.objects.filter(customer=monthly).count() == 10


def test_only_the_newest_models_are_kept_and_the_rebuild_is_scheduled_nightly() -> None:
    for day in range(33):
        call_command(
            "learn_retry_timing",
            "--now",
            (NOW + timedelta(days=day)).isoformat(),
            "--no-paydays",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert RetryTimingModel.objects.count() == 30
    assert RetryTimingModel.objects.latest().built_at == NOW + timedelta(days=32)
    [schedule] = [s for s in schedules() if s["func"] == "dunning.tasks.learn_retry_timing"]
    assert schedule["schedule_type"] == "D"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("dunning_seeds")
def test_counting_in_parallel_id_ranges_gives_the_same_counts_as_one_scan() -> None:
    from collections import Counter

    from django.db import connection

    from dunning.services.timing_learn import _count_rows, _id_ranges

    # Filler rows first (not learnt from: staff retries), so the table has pages enough to split in three.
    case, invoice, _method = failed_invoice(failed_at=NOW - timedelta(days=5))
    PaymentAttempt.objects.bulk_create(
        PaymentAttempt(
            invoice=invoice,
            case=case,
            number=10 + i,
            amount_minor=4900,
            currency="EUR",
            gateway="simulated",
            source=AttemptSource.STAFF,
            status=AttemptStatus.FAILED,
            message="x" * 400,
        )
        for i in range(1500)
    )
    rng = random.Random(3)
    _attempts(
        [
            {
                "status": rng.choice([AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.FAILED]),
                "local_weekday": rng.randrange(7),
                "local_hour": rng.randrange(24),
                "local_day": rng.randrange(1, 29),
                "payday_days": rng.choice([None, 0, 1, 5, 20]),
                "hours_since_failure": rng.choice([None, 2, 30, 200]),
                "card_funding": rng.choice(["debit", "credit"]),
            }
            for _ in range(40)
        ]
    )

    def totals(workers: int) -> Counter[tuple[str, str, str, object]]:
        counts: Counter[tuple[str, str, str, object]] = Counter()
        for code, _category, feature, raw, attempts, successes in _count_rows(workers=workers):
            counts[(code, feature, str(raw), "n")] += attempts
            counts[(code, feature, str(raw), "s")] += successes
        return counts

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE dunning_paymentattempt")
    assert len(_id_ranges(3)) == 3
    single, parallel = totals(1), totals(3)
    assert parallel == single
    assert single[("insufficient_funds", "", "None", "n")] == 40
