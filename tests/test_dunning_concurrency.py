"""Invariant 1 under real concurrency: parallel ticks and racing charges never charge an invoice twice.

These need PostgreSQL (row locks, SKIP LOCKED, real parallel writers) and committed data.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection, connections
from django.db.models import Count, Q

from customers.models import EntitlementState
from dunning.gateways.simulated import SimulatedGateway
from dunning.models import AttemptSource, AttemptStatus, DunningCase, PaymentAttempt, SimulatedCharge
from dunning.services.cases import invoice_payment_failed
from dunning.services.charging import ChargeRefused, attempt_charge
from dunning.services.tick import run_tick
from tests.factories import TEST_ACTOR, InvoiceFactory, failed_invoice

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dunning_seeds", "fixed_default_policy"),
]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _database_url() -> str:
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


def test_four_parallel_ticks_share_the_work_without_overlap() -> None:
    cases = []
    for index in range(120):
        card = "pm_sim_4242424242424242" if index % 2 else "pm_sim_4000000000009995"
        cases.append(failed_invoice(card=card, failed_at=OPENED)[0])
    # Day 0 steps first, so that at the measured moment every case has exactly one due step: the retry.
    run_tick(now=OPENED + timedelta(hours=1))
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DUNNING_BATCH_SIZE": "10",
        "SIMULATED_GATEWAY_LATENCY_MS": "5",
        "DUNNING_GATEWAY_CONCURRENCY": "4",
    }
    connections.close_all()
    moment = "2026-05-05T12:00:00Z"
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_dunning", "--now", moment],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    processed = [int(re.search(r"ran: (\d+) due case", out).group(1)) for out, _ in outputs]  # type: ignore[union-attr]
    assert sum(processed) == 120, processed
    assert sum(1 for n in processed if n) >= 2, f"the ticks did not run in parallel: {processed}"

    retries = PaymentAttempt.objects.filter(source=AttemptSource.RETRY)
    per_invoice = retries.values("invoice_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_invoice} == {1}
    assert per_invoice.count() == 120
    assert not retries.filter(status__in=[AttemptStatus.PENDING, AttemptStatus.UNKNOWN]).exists()
    charges = SimulatedCharge.objects.values("invoice_ref").annotate(
        n=Count("id"), ok=Count("id", filter=Q(succeeded=True))
    )
    assert {row["n"] for row in charges} == {1}
    assert sum(row["ok"] for row in charges) == 60
    assert DunningCase.objects.filter(state="recovered").count() == 60
    assert not DunningCase.objects.filter(claimed_until__isnull=False).exists()


@pytest.mark.parametrize("round_number", range(4))
def test_a_staff_retry_racing_a_tick_charges_the_invoice_once(round_number: int) -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            start.wait()
            run_tick(now=OPENED + timedelta(days=1))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    def staff_retry() -> None:
        try:
            start.wait()
            attempt_charge(invoice=invoice, source=AttemptSource.STAFF, actor=TEST_ACTOR)
        except ChargeRefused:
            pass  # the tick got there first: refused, not charged
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick), threading.Thread(target=staff_retry)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert SimulatedCharge.objects.filter(succeeded=True).count() == 1
    assert PaymentAttempt.objects.filter(invoice=invoice, status=AttemptStatus.SUCCEEDED).count() == 1
    case.refresh_from_db()
    assert case.state == "recovered"


class _ThreadRecordingGateway(SimulatedGateway):
    """The simulated gateway, noting which thread made each charge."""

    def __init__(self) -> None:
        super().__init__(ledger="database", latency_ms=5, rules=[])
        self.threads: set[str] = set()

    def charge(self, request):  # type: ignore[no-untyped-def]
        self.threads.add(threading.current_thread().name)
        return super().charge(request)


def test_tick_workers_in_one_process_share_batches_and_settle_each_customer_once(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DUNNING_GATEWAY_CONCURRENCY = 1  # charges run on the worker threads themselves
    customers = []
    for index in range(30):
        card = "pm_sim_4242424242424242" if index % 2 else "pm_sim_4000000000009995"
        customers.append((failed_invoice(card=card, failed_at=OPENED)[1].customer, card))
    for customer, _ in customers:
        # A second failed invoice of each customer, 30 cases later: in another batch, maybe another worker.
        second = InvoiceFactory(customer=customer, amount_due_minor=2500, gateway="simulated")
        invoice_payment_failed(
            invoice=second, actor=TEST_ACTOR, decline_code="insufficient_funds", failed_at=OPENED
        )
    run_tick(now=OPENED + timedelta(hours=1), workers=1)  # the day-0 steps
    gateway = _ThreadRecordingGateway()

    summary = run_tick(now=OPENED + timedelta(days=1), batch_size=4, workers=3, gateway=gateway)

    assert summary.cases == 60
    assert summary.counts["retry.succeeded"] == 30 and summary.counts["retry.failed"] == 30
    assert len(gateway.threads) >= 2, f"one thread did every batch: {gateway.threads}"
    retries = PaymentAttempt.objects.filter(source=AttemptSource.RETRY)
    assert retries.count() == 60
    assert set(
        retries.values_list("invoice_id", flat=True).annotate(n=Count("id")).values_list("n", flat=True)
    ) == {1}
    # A customer whose two cases were both recovered (perhaps by two workers at once) is active again.
    for customer, card in customers:
        customer.refresh_from_db()
        expected = EntitlementState.ACTIVE if card.endswith("4242") else EntitlementState.PAST_DUE
        assert customer.entitlement_state == expected, (customer.pk, card)


def test_an_error_in_one_tick_worker_reaches_the_caller(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dunning.services import tick_batch

    for _ in range(6):
        failed_invoice(failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1), workers=1)
    record = tick_batch._record_batch

    def failing_in_workers(*args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread().name.startswith("tick-worker"):
            raise RuntimeError("worker failed")
        return record(*args, **kwargs)

    monkeypatch.setattr(tick_batch, "_record_batch", failing_in_workers)
    with pytest.raises(RuntimeError, match="worker failed"):
        run_tick(now=OPENED + timedelta(days=1), batch_size=1, workers=2)
    # The failed batch rolled back: its attempt stays pending, for the next tick to reconcile.
    assert PaymentAttempt.objects.filter(source=AttemptSource.RETRY, status=AttemptStatus.PENDING).exists()


def test_two_recoveries_of_one_customer_at_once_restore_access() -> None:
    """The last two open cases of a customer recovered by two transactions at the same moment: each must
    not decide on access while the other's recovery is still uncommitted."""
    from django.db import transaction

    from dunning.services.staff import case_mark_paid

    first, invoice, _ = failed_invoice(failed_at=OPENED)
    customer = invoice.customer
    second_invoice = InvoiceFactory(customer=customer, amount_due_minor=2500, gateway="simulated")
    second = invoice_payment_failed(
        invoice=second_invoice, actor=TEST_ACTOR, decline_code="insufficient_funds", failed_at=OPENED
    )
    assert second is not None
    first_recorded = threading.Event()
    errors: list[BaseException] = []

    def recover_first_and_hold() -> None:
        try:
            with transaction.atomic():
                case_mark_paid(case=first, actor=TEST_ACTOR, reference="wire 1")
                first_recorded.set()
                threading.Event().wait(0.5)  # still uncommitted while the second recovery runs
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    holder = threading.Thread(target=recover_first_and_hold)
    holder.start()
    assert first_recorded.wait(10)
    case_mark_paid(case=second, actor=TEST_ACTOR, reference="wire 2")
    holder.join()
    assert errors == []
    customer.refresh_from_db()
    assert customer.entitlement_state == EntitlementState.ACTIVE


def test_two_part_payments_recorded_at_once_never_pay_more_than_is_due() -> None:
    """Two staff members record 30.00 each on a 49.00 invoice at the same moment: one is recorded, the
    other is refused with the amount left, and the invoice is never overpaid."""
    from django.core.exceptions import ValidationError

    from dunning.services.staff import case_record_offline_payment

    case, invoice, _ = failed_invoice(failed_at=OPENED, amount_minor=4900)
    start = threading.Barrier(2)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def record(reference: str) -> None:
        try:
            start.wait()
            case_record_offline_payment(case=case, actor=TEST_ACTOR, reference=reference, amount_minor=3000)
            outcomes.append("recorded")
        except ValidationError as refusal:
            outcomes.append(" ".join(refusal.messages))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=record, args=(f"wire {n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(outcomes) == [
        "recorded",
        f"€30.00 is more than the €19.00 left to pay on invoice {invoice.number}.",
    ]
    invoice.refresh_from_db()
    assert (invoice.amount_paid_minor, invoice.status) == (3000, "open")
