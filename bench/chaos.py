"""The engine run as production runs it, to prove invariant 1 under faults (``make chaos``, and a smaller
run in the test suite).

Several ``run_dunning`` processes (each with its tick workers) share the work over simulated weeks, against
a simulated gateway that is slow and fails at random: timeouts before the request arrives, 5xx errors,
timeouts after the money moved, and truth queries that fail. Meanwhile staff press "retry now", customers
press "pay now" on the portal, the billing system reports invoices paid by wire, and one tick process is
killed with SIGKILL in the middle of a batch. Then cleanup ticks run without faults, and the whole
history is checked against the simulated processor's ledger.

Needs PostgreSQL (``DATABASE_URL``) with the schema migrated; it deletes and recreates the dunning data.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# Test cards of the simulated gateway and how often each appears: successes, soft and hard declines,
# processing errors and authentication requests, as in a real book of failed payments.
CARD_MIX = [
    ("pm_sim_4242424242424242", 30),  # succeeds
    ("pm_sim_4000000000009995", 30),  # insufficient funds (soft)
    ("pm_sim_4000000000000002", 10),  # generic decline (soft)
    ("pm_sim_4000000000000069", 12),  # expired card (hard)
    ("pm_sim_4000000000000119", 10),  # processing error
    ("pm_sim_4000002500003155", 8),  # authentication required
]
HARD_CODES = {
    "expired_card",
    "lost_card",
    "stolen_card",
    "fraudulent",
    "incorrect_number",
    "do_not_honor_hard",
}
RAN = re.compile(r"ran: (\d+) due case")


@dataclass(frozen=True)
class ChaosConfig:
    customers: int = 2000
    processes: int = 4
    workers: int = 2
    chaos: float = 0.3
    truth_failures: float = 0.3
    latency_ms: int = 20
    rate_limit: float = 0.0
    lease_seconds: int = 4
    batch_size: int = 250
    days: int = 30
    step_hours: int = 12
    staff_actions: int = 6
    portal_actions: int = 6
    outside_payments: int = 3
    kill_round: int | None = 2
    seed: int = 7


@dataclass
class ChaosReport:
    invoices: int = 0
    rounds: int = 0
    tick_processes: int = 0
    failed_processes: list[str] = field(default_factory=list)
    killed: int = 0
    cases_processed: int = 0
    tick_seconds: float = 0.0
    ledger_charges: int = 0
    ledger_successes: int = 0
    staff_and_portal_charges: int = 0
    outside_payments: int = 0
    double_charged_invoices: int = 0
    real_double_payments: int = 0
    double_payment_flags: int = 0
    unshown_charges: list[str] = field(default_factory=list)
    hard_declined_charged_again: int = 0
    over_retry_cap: int = 0
    people_errors: list[str] = field(default_factory=list)
    unsettled_attempts: int = 0
    claimed_cases_left: int = 0
    outcome_counts: Counter[str] = field(default_factory=Counter)

    @property
    def throughput(self) -> float:
        return self.cases_processed / self.tick_seconds if self.tick_seconds else 0.0

    def problems(self) -> list[str]:
        found = []
        if self.failed_processes:
            found.append(f"tick processes died: {self.failed_processes}")
        if self.double_payment_flags != self.real_double_payments:
            found.append(
                f"{self.double_payment_flags} double-payment flags for {self.real_double_payments} real double payments"
            )
        if self.unshown_charges:
            found.append(f"charges at the processor we do not show: {self.unshown_charges[:5]}")
        if self.hard_declined_charged_again:
            found.append(f"{self.hard_declined_charged_again} charges of a hard-declined card")
        if self.over_retry_cap:
            found.append(f"{self.over_retry_cap} cases over their retry cap")
        if self.people_errors:
            found.append(f"staff or portal actions failed: {self.people_errors[:3]}")
        if self.unsettled_attempts:
            found.append(f"{self.unsettled_attempts} attempts left unsettled after cleanup")
        if self.claimed_cases_left:
            found.append(f"{self.claimed_cases_left} cases left claimed after cleanup")
        return found

    def lines(self) -> list[str]:
        return [
            f"invoices: {self.invoices:,}; rounds: {self.rounds}; tick processes: {self.tick_processes} "
            f"({self.killed} killed with SIGKILL, {len(self.failed_processes)} died on their own)",
            f"processor ledger: {self.ledger_charges:,} charges, {self.ledger_successes:,} succeeded; "
            f"staff and portal charges: {self.staff_and_portal_charges}; invoices paid by wire: {self.outside_payments}",
            f"invoices charged successfully more than once: {self.double_charged_invoices}; real double payments: "
            f"{self.real_double_payments}; flags: {self.double_payment_flags}",
            f"charges we do not show: {len(self.unshown_charges)}; hard-declined cards charged again: "
            f"{self.hard_declined_charged_again}; cases over the retry cap: {self.over_retry_cap}",
            f"left unsettled: {self.unsettled_attempts} attempts, {self.claimed_cases_left} claimed cases",
            f"throughput: {self.throughput:,.0f} cases/s ({self.cases_processed:,} case passes in {self.tick_seconds:.1f} s of ticks)",
        ]


def populate(config: ChaosConfig) -> None:
    """A book of failed invoices, opened through the real service, on a clean slate."""
    from django.db import connection

    from customers.actors import Actor
    from customers.models import Customer, Invoice, PaymentMethod
    from dunning.services.cases import invoice_payment_failed

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE dunning_doublepayment, dunning_caseevent, dunning_paymentattempt, dunning_dunningcase, "
            "dunning_simulatedcharge, dunning_simulatedgatewayrule, dunning_gatewaycircuit, "
            "notifications_notification, notifications_banner, notifications_stafftask, customers_auditevent, "
            "customers_invoice, customers_paymentmethod, customers_contact, customers_customer "
            "RESTART IDENTITY CASCADE"
        )
    rng = random.Random(config.seed)
    cards = [card for card, weight in CARD_MIX for _ in range(weight)]
    zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"]
    customers = Customer.objects.bulk_create(
        Customer(
            external_id=f"chaos-{n}",
            name=f"Chaos customer {n}",
            email=f"billing-{n}@example.com",
            currency="EUR",
            time_zone=rng.choice(zones),
            gateway_customer_id=f"cus_chaos_{n}",
        )
        for n in range(config.customers)
    )
    PaymentMethod.objects.bulk_create(
        PaymentMethod(
            customer=customer,
            type="card",
            brand="visa",
            last4=card[-4:],
            exp_month=12,
            exp_year=2030,
            gateway_payment_method_id=card,
            is_default=True,
        )
        for customer, card in zip(customers, (rng.choice(cards) for _ in customers), strict=True)
    )
    invoices = Invoice.objects.bulk_create(
        Invoice(
            customer=customer,
            number=f"CH-{n}",
            amount_due_minor=rng.choice([900, 2900, 4900, 19900]),
            currency="EUR",
            status="open",
            due_at=START,
            gateway="simulated",
        )
        for n, customer in enumerate(customers)
    )
    actor = Actor.system("chaos setup")
    for invoice in invoices:
        invoice_payment_failed(
            invoice=invoice, actor=actor, decline_code="insufficient_funds", failed_at=START
        )


def _tick_env(config: ChaosConfig, *, faults: bool, seed: int) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings_test"),
        "Q_SYNC": "0",
        "REPORTING_REFRESH_AFTER_TICK": "false",
        "SIMULATED_GATEWAY_LEDGER": "database",
        "SIMULATED_GATEWAY_CHAOS": str(config.chaos if faults else 0),
        "SIMULATED_GATEWAY_TRUTH_FAILURES": str(config.truth_failures if faults else 0),
        "SIMULATED_GATEWAY_LATENCY_MS": str(config.latency_ms),
        "SIMULATED_GATEWAY_SEED": str(seed),
        "DUNNING_TICK_WORKERS": str(config.workers),
        "DUNNING_BATCH_SIZE": str(config.batch_size),
        "DUNNING_CLAIM_LEASE_SECONDS": str(config.lease_seconds),
        "DUNNING_GATEWAY_RATE_LIMIT": str(config.rate_limit),
        "DUNNING_GATEWAY_CONCURRENCY": "8",
        "DUNNING_PROCESSING_RETRY_MINUTES": "60",
        # An outage is not what this run measures: 30 % faults must not pause charging.
        "DUNNING_CIRCUIT_FAILURE_RATIO": "0.9",
    }


def _ticks(
    config: ChaosConfig,
    moment: datetime,
    *,
    processes: int,
    faults: bool,
    kill: bool,
    report: ChaosReport,
    seed: int,
) -> None:
    from dunning.models import SimulatedCharge

    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_dunning", "--now", moment.isoformat()],
            cwd=PROJECT_ROOT,
            env=_tick_env(config, faults=faults, seed=seed * 100 + n),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    report.tick_processes += processes
    killed = None
    if kill:
        # The worst moment: money is moving (the ledger grows) and the batch is not recorded yet.
        before = SimulatedCharge.objects.count()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and running[0].poll() is None:
            if SimulatedCharge.objects.count() >= before + 10:
                break
            time.sleep(0.01)
        if running[0].poll() is None:
            running[0].send_signal(signal.SIGKILL)
            killed = running[0]
            report.killed += 1
    for process in running:
        out, err = process.communicate(timeout=900)
        if process is killed:
            continue
        if process.returncode != 0:
            report.failed_processes.append(
                err.strip().splitlines()[-1] if err.strip() else f"exit {process.returncode}"
            )
        match = RAN.search(out)
        report.cases_processed += int(match.group(1)) if match else 0
    report.tick_seconds += time.perf_counter() - started


def _people(
    config: ChaosConfig, moment: datetime, rng: random.Random, report: ChaosReport, stop: threading.Event
) -> None:
    """Staff, customers and the billing system acting on the same invoices while the ticks run."""
    from django.core.exceptions import ValidationError
    from django.db import connections

    from customers.actors import Actor
    from customers.models import InvoiceStatus
    from customers.services import invoice_close
    from dunning.gateways.simulated import SimulatedGateway
    from dunning.models import AttemptSource, CaseState, DunningCase
    from dunning.services.charging import ChargeRefused, attempt_charge
    from dunning.services.staff import case_retry_now

    gateway = SimulatedGateway(
        chaos=config.chaos, truth_failures=config.truth_failures, latency_ms=config.latency_ms
    )
    try:
        open_cases = list(
            DunningCase.objects.filter(state=CaseState.OPEN)
            .select_related("invoice", "customer")
            .order_by("?")[:200]
        )
        actions: list[Callable[[DunningCase], object]] = []
        staff = Actor.system("chaos staff")
        customer = Actor.customer("chaos customer")

        def retry_now(case: DunningCase) -> object:
            return case_retry_now(case=case, actor=staff)

        def pay_now(case: DunningCase) -> object:
            return attempt_charge(
                invoice=case.invoice,
                source=AttemptSource.PORTAL,
                actor=customer,
                gateway=gateway,
                customer_present=True,
            )

        def paid_by_wire(case: DunningCase) -> object:
            closed = invoice_close(
                invoice=case.invoice, status=InvoiceStatus.PAID, actor=staff, reason="paid by wire"
            )
            report.outside_payments += closed
            return closed

        actions += [retry_now] * config.staff_actions + [pay_now] * config.portal_actions
        actions += [paid_by_wire] * config.outside_payments
        rng.shuffle(actions)
        for action, case in zip(actions, open_cases, strict=False):
            if stop.is_set():
                return
            try:
                result = action(case)
                if action is not paid_by_wire and result is not None:
                    report.staff_and_portal_charges += 1
            except (ValidationError, ChargeRefused):
                pass  # refused politely: in flight, paid, blocked
            except Exception as error:  # noqa: BLE001 - reported with the run's problems
                report.people_errors.append(f"{action.__name__}: {type(error).__name__}: {error}")
            time.sleep(rng.uniform(0, 0.05))
    except Exception as error:  # noqa: BLE001
        report.people_errors.append(f"{type(error).__name__}: {error}")
    finally:
        connections.close_all()


def run_chaos(config: ChaosConfig, *, progress: Callable[[str], None] = print) -> ChaosReport:
    from django.db import connections

    report = ChaosReport(invoices=config.customers)
    rng = random.Random(config.seed)
    progress(f"populating {config.customers:,} failed invoices")
    populate(config)
    connections.close_all()
    moment = START
    end = START + timedelta(days=config.days)
    round_number = 0
    while moment <= end:
        stop = threading.Event()
        people = threading.Thread(target=_people, args=(config, moment, rng, report, stop))
        people.start()
        _ticks(
            config,
            moment,
            processes=config.processes,
            faults=True,
            kill=round_number == config.kill_round,
            report=report,
            seed=round_number,
        )
        stop.set()
        people.join()
        round_number += 1
        progress(
            f"round {round_number}: {moment:%Y-%m-%d %H:%M}, {report.cases_processed:,} case passes so far"
        )
        moment += timedelta(hours=config.step_hours)
    report.rounds = round_number
    # Cleanup: no faults; each tick is an hour later, so every lease of the chaotic rounds has ended.
    for _ in range(12):
        moment += timedelta(hours=1)
        _ticks(config, moment, processes=1, faults=False, kill=False, report=report, seed=999)
        if not _unsettled():
            break
    connections.close_all()
    check(report)
    return report


def _unsettled() -> int:
    from dunning.models import IN_FLIGHT_STATUSES, PaymentAttempt

    return PaymentAttempt.objects.filter(status__in=IN_FLIGHT_STATUSES).count()


def check(report: ChaosReport) -> None:
    """Compare our records with the processor's ledger."""
    from django.db.models import Count, Q

    from dunning.models import (
        AttemptSource,
        AttemptStatus,
        DoublePayment,
        DunningCase,
        PaymentAttempt,
        SimulatedCharge,
    )

    ledger = list(
        SimulatedCharge.objects.order_by("created_at", "id").values_list(
            "idempotency_key", "invoice_ref", "payment_method_ref", "succeeded", "decline_code"
        )
    )
    report.ledger_charges = len(ledger)
    report.ledger_successes = sum(1 for row in ledger if row[3])
    successes = Counter(invoice for _, invoice, _, ok, _ in ledger if ok)
    report.double_charged_invoices = sum(1 for n in successes.values() if n > 1)
    attempts = {
        a.idempotency_key: a
        for a in PaymentAttempt.objects.exclude(source=AttemptSource.INITIAL).select_related("invoice")
    }
    for key, _invoice, _method, ok, code in ledger:
        attempt = attempts.get(key)
        expected = {AttemptStatus.SUCCEEDED, AttemptStatus.DUPLICATE} if ok else {AttemptStatus.FAILED}
        if attempt is None or attempt.status not in expected or (not ok and attempt.decline_code != code):
            report.unshown_charges.append(
                f"{key}: ledger {'ok' if ok else code}, ours {attempt and attempt.status}"
            )
    # A real double payment: money moved for an invoice already paid by another charge or by wire.
    report.real_double_payments = (
        sum(1 for a in attempts.values() if a.status == AttemptStatus.DUPLICATE)
        + sum(n - 1 for n in successes.values() if n > 1)
        - PaymentAttempt.objects.filter(
            status=AttemptStatus.DUPLICATE, invoice__number__in=[i for i, n in successes.items() if n > 1]
        ).count()
    )
    report.double_payment_flags = DoublePayment.objects.count()
    hard_seen: set[tuple[str, str]] = set()
    for _, invoice, method, ok, code in ledger:
        if (invoice, method) in hard_seen:
            report.hard_declined_charged_again += 1
        if not ok and code in HARD_CODES:
            hard_seen.add((invoice, method))
    report.over_retry_cap = (
        DunningCase.objects.annotate(
            processed_retries=Count(
                "attempts", filter=Q(attempts__source=AttemptSource.RETRY, attempts__processed=True)
            )
        )
        .filter(processed_retries__gt=4)
        .count()
    )
    report.unsettled_attempts = _unsettled()
    report.claimed_cases_left = DunningCase.objects.filter(
        claimed_until__gt=START + timedelta(days=400)
    ).count()
    report.outcome_counts = Counter(PaymentAttempt.objects.values_list("status", flat=True))
