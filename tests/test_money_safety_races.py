"""Invariant 1 under the conditions production adds: a gateway slower than the lease, concurrent writers
holding stale copies, parallel reconciliation, deadlocks, a tick killed mid-batch, and a chaotic gateway
under four tick processes with staff and customers acting at the same time.

PostgreSQL with committed data (real row locks, real parallel connections).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection, connections
from django.db.models import Count, Q
from django.test import override_settings
from django.utils import timezone

from customers.models import Invoice
from dunning.gateways import ChargeRequest, ChargeResult, TruthQuery
from dunning.gateways.simulated import SimulatedGateway
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    DoublePayment,
    DunningCase,
    PaymentAttempt,
    SimulatedCharge,
    SimulatedGatewayRule,
)
from dunning.services.charging import attempt_charge
from dunning.services.reconcile import attempts_reconcile
from dunning.services.retrying import in_transaction
from dunning.services.tick import run_tick
from tests.factories import TEST_ACTOR, failed_invoice

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dunning_seeds", "fixed_default_policy"),
]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SUCCEEDS = "pm_sim_4242424242424242"
EXPIRED = "pm_sim_4000000000000069"


def _database_url() -> str:
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host = settings["HOST"] or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"


def successful_charges_per_invoice() -> dict[str, int]:
    rows = SimulatedCharge.objects.filter(succeeded=True).values("invoice_ref").annotate(n=Count("id"))
    return {row["invoice_ref"]: row["n"] for row in rows}


def assert_ledger_matches_attempts() -> None:
    """Every charge the processor recorded is shown on its attempt, with the same outcome."""
    attempts = {a.idempotency_key: a for a in PaymentAttempt.objects.exclude(source=AttemptSource.INITIAL)}
    for charge in SimulatedCharge.objects.all():
        attempt = attempts[charge.idempotency_key]
        if charge.succeeded:
            assert attempt.status in (AttemptStatus.SUCCEEDED, AttemptStatus.DUPLICATE), attempt
        else:
            assert (attempt.status, attempt.decline_code) == (AttemptStatus.FAILED, charge.decline_code)


class Holding(SimulatedGateway):
    """A gateway call that waits for the test to let it through (the test decides what happens meanwhile)."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.entered, self.release = entered, release

    def charge(self, request: ChargeRequest) -> ChargeResult:
        self.entered.set()
        assert self.release.wait(30), "the test never released the gateway call"
        return super().charge(request)


class SlowTruth(SimulatedGateway):
    def get_truth(self, query: TruthQuery) -> ChargeResult | None:
        time.sleep(0.05)
        return super().get_truth(query)


def in_thread(target, errors: list[BaseException]) -> threading.Thread:  # type: ignore[no-untyped-def]
    def run() -> None:
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - re-raised by the test
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@override_settings(
    DUNNING_CLAIM_LEASE_SECONDS=1, DUNNING_PROCESSING_RETRY_MINUTES=0, DUNNING_GATEWAY_CONCURRENCY=2
)
def test_a_charge_phase_slower_than_the_lease_keeps_its_claim_and_charges_once() -> None:
    """Each call takes longer than the whole lease, and the phase four times as long. Other ticks run all
    the while; the heartbeat keeps the batch's claims, so none of them takes the cases or the attempts over."""
    failed = timezone.now() - timedelta(days=2)
    for _ in range(8):
        failed_invoice(card=SUCCEEDS, failed_at=failed)
    connections.close_all()
    errors: list[BaseException] = []
    slow = in_thread(lambda: run_tick(gateway=SimulatedGateway(latency_ms=1200)), errors)
    others = 0
    while slow.is_alive():
        time.sleep(0.3)
        run_tick(gateway=SimulatedGateway())
        others += 1
    slow.join()
    assert not errors, errors
    assert others >= 10
    assert set(successful_charges_per_invoice().values()) == {1}
    assert len(successful_charges_per_invoice()) == 8
    assert PaymentAttempt.objects.filter(source=AttemptSource.RETRY).count() == 8
    assert not PaymentAttempt.objects.filter(
        status__in=[AttemptStatus.PENDING, AttemptStatus.UNKNOWN]
    ).exists()
    assert_ledger_matches_attempts()
    assert DunningCase.objects.filter(state="recovered").count() == 8
    assert not DoublePayment.objects.exists()


def test_a_tick_holding_a_stale_copy_never_undoes_a_newer_hard_decline() -> None:
    """A staff retry hard-declines the card while a tick batch that read the case earlier is still charging
    other cases. The batch's write must not put the old soft decline back, or the expired card is retried."""
    expired, expired_invoice, _ = failed_invoice(card=EXPIRED, failed_at=OPENED)  # opened as a soft decline
    failed_invoice(failed_at=OPENED)  # another case in the same batch, charging slowly
    run_tick(now=OPENED + timedelta(hours=1))
    connections.close_all()
    staff_in, staff_go, tick_in, tick_go = (threading.Event() for _ in range(4))
    errors: list[BaseException] = []
    staff = in_thread(
        lambda: attempt_charge(
            invoice=expired_invoice,
            source=AttemptSource.STAFF,
            actor=TEST_ACTOR,
            gateway=Holding(staff_in, staff_go),
        ),
        errors,
    )
    assert staff_in.wait(10)  # the staff charge is in flight
    tick = in_thread(
        lambda: run_tick(now=OPENED + timedelta(days=1), gateway=Holding(tick_in, tick_go)), errors
    )
    assert tick_in.wait(10)  # the batch has read both cases and is charging the other one
    staff_go.set()
    staff.join()  # expired_card: the case is now blocked on that card
    tick_go.set()
    tick.join()
    assert not errors, errors
    expired.refresh_from_db()
    assert expired.decline_category == "hard"
    assert expired.hard_declined_payment_method_id is not None
    for hours in range(1, 24 * 10, 6):
        run_tick(now=OPENED + timedelta(days=1, hours=hours))
    assert SimulatedCharge.objects.filter(payment_method_ref=EXPIRED).count() == 1


def test_parallel_reconciliations_settle_each_attempt_once() -> None:
    invoices = []
    for _ in range(6):
        _, invoice, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
        SimulatedGatewayRule.objects.create(
            customer_external_id=invoice.customer.external_id, fault="timeout_after_charge"
        )
        invoices.append(invoice)
    run_tick(now=OPENED + timedelta(days=1))
    SimulatedGatewayRule.objects.all().delete()
    assert PaymentAttempt.objects.filter(status=AttemptStatus.UNKNOWN).count() == 6
    connections.close_all()
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def reconcile() -> None:
        start.wait()
        attempts_reconcile(gateway=SlowTruth(), actor=TEST_ACTOR, now=OPENED + timedelta(days=1, minutes=5))

    threads = [in_thread(reconcile, errors) for _ in range(3)]
    for thread in threads:
        thread.join()
    assert not errors, errors
    per_case = DunningCase.objects.annotate(
        reconciled=Count("events", filter=Q(events__kind=CaseEventKind.ATTEMPT_RECONCILED)),
        succeeded=Count("events", filter=Q(events__kind=CaseEventKind.ATTEMPT_SUCCEEDED)),
    )
    assert {(c.reconciled, c.succeeded) for c in per_case} == {(1, 1)}
    assert not DoublePayment.objects.exists()
    assert not DunningCase.objects.filter(needs_staff_review=True).exists()
    assert DunningCase.objects.filter(state="recovered").count() == 6


def test_a_deadlocked_transaction_runs_again_instead_of_failing(caplog) -> None:  # type: ignore[no-untyped-def]
    first, second = (failed_invoice(failed_at=OPENED)[1] for _ in range(2))
    connections.close_all()
    meet = threading.Barrier(2, timeout=10)
    tries: list[str] = []
    errors: list[BaseException] = []

    def lock_in_order(a: Invoice, b: Invoice, name: str) -> None:
        def work() -> None:
            tries.append(name)
            Invoice.objects.select_for_update().get(pk=a.pk)
            if tries.count(name) == 1:
                meet.wait()  # both hold their first row: one of them will be chosen as the deadlock victim
            Invoice.objects.select_for_update().get(pk=b.pk)
            time.sleep(0.05)

        in_transaction(work, what=f"test {name}")

    threads = [
        in_thread(lambda: lock_in_order(first, second, "one"), errors),
        in_thread(lambda: lock_in_order(second, first, "two"), errors),
    ]
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(tries) == 3  # the victim ran once more
    assert "deadlock (try 1 of 8); running it again" in caplog.text


def test_a_tick_killed_mid_batch_loses_nothing_and_charges_nothing_twice() -> None:
    for index in range(12):
        failed_invoice(card=SUCCEEDS if index % 2 else "pm_sim_4000000000009995", failed_at=OPENED)
    run_tick(now=OPENED + timedelta(hours=1))
    connections.close_all()
    moment = OPENED + timedelta(days=1)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "SIMULATED_GATEWAY_LATENCY_MS": "150",
        "DUNNING_GATEWAY_CONCURRENCY": "1",
        "DUNNING_CLAIM_LEASE_SECONDS": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_dunning", "--now", moment.isoformat()],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while SimulatedCharge.objects.count() < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # money is moving, and nothing of it is recorded yet
    process.wait()
    charged_before = SimulatedCharge.objects.count()
    assert 4 <= charged_before < 12
    assert (
        PaymentAttempt.objects.filter(source=AttemptSource.RETRY, status=AttemptStatus.PENDING).count() == 12
    )
    # While the dead tick's lease lasts, nothing is touched; after it, one tick settles everything.
    run_tick(now=moment)
    assert SimulatedCharge.objects.count() == charged_before
    run_tick(now=moment + timedelta(minutes=1))
    assert not PaymentAttempt.objects.filter(
        status__in=[AttemptStatus.PENDING, AttemptStatus.UNKNOWN]
    ).exists()
    assert PaymentAttempt.objects.filter(source=AttemptSource.RETRY).count() == 12  # no second attempt
    assert set(successful_charges_per_invoice().values()) == {1}
    assert_ledger_matches_attempts()
    assert DunningCase.objects.filter(state="recovered").count() == 6
    assert (
        not DunningCase.objects.filter(claimed_until__isnull=False, state="open", claim_token__gt="")
        .exclude(claimed_until__lte=moment + timedelta(minutes=1))
        .exists()
    )


def test_four_tick_processes_in_a_chaotic_gateway_with_staff_and_customers_acting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The production scenario at small scale (``make chaos`` runs it large): 30 % gateway faults and
    failing truth queries, 4 processes of 2 workers, staff retries, portal payments, invoices paid by wire,
    and a tick process killed with SIGKILL mid-batch."""
    from bench.chaos import ChaosConfig, run_chaos

    monkeypatch.setenv("DATABASE_URL", _database_url())  # for the tick processes
    # A slow, rate-limited gateway: a batch's charges take longer than the lease, as in production.
    config = ChaosConfig(
        customers=120,
        days=10,
        step_hours=24,
        batch_size=20,
        lease_seconds=1,
        latency_ms=100,
        rate_limit=15,
        kill_round=1,
    )
    report = run_chaos(config, progress=lambda message: None)
    assert report.problems() == [], "\n".join(report.lines())
    assert report.killed == 1
    assert report.ledger_charges > 150
    # Faults really happened, and the money still moved at most once per invoice.
    assert report.double_charged_invoices == 0
    assert report.outcome_counts[AttemptStatus.SUCCEEDED] > 20
