"""The tick: claim due cases in batches, run their steps, charge retries, record results.

Per batch of cases:
1. one transaction claims the batch (row locks, skipped if another tick holds them, then a time-limited
   lease), loads what the plans need, and inserts a ``pending`` attempt for every retry;
2. the gateway is called outside any transaction, several calls at a time;
3. one transaction records every result, runs the other due steps and moves every case on.
Several ticks on several machines share the work without overlap; a tick that dies leaves leases that
expire and attempts that the next tick reconciles before charging anything again.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from customers.actors import Actor
from customers.bulk import insert_rows
from customers.models import InvoiceStatus
from dunning import state as machine
from dunning.gateways import PaymentGateway, get_gateway
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
)
from dunning.services import effects
from dunning.services.batch_load import PlannedCase, Versions, claim_due_cases, load_batch
from dunning.services.cases import Transition, recovery_transition
from dunning.services.charging import attempts_reconcile, call_gateway, charge_request_for, result_or_unknown
from dunning.services.declines import DeclineTable
from dunning.services.events import EventBuffer
from dunning.services.outcomes import Settlement, settle_attempts
from dunning.services.planning import after_failed_retry
from dunning.signals import tick_finished

logger = logging.getLogger(__name__)
TICK_ACTOR = Actor.system("dunning tick")


@dataclass
class TickSummary:
    counts: Counter[str] = field(default_factory=Counter)
    cases: int = 0
    batches: int = 0
    dry_run: bool = False

    def lines(self) -> list[str]:
        prefix = "[dry run] would run" if self.dry_run else "ran"
        lines = [f"{prefix}: {self.cases} due case(s) in {self.batches} batch(es)"]
        for key in sorted(self.counts):
            if self.counts[key]:
                lines.append(f"  {key}: {self.counts[key]}")
        return lines


def _insert_pending_attempts(retries: list[PlannedCase], *, gateway: str, now: datetime) -> dict[int, int]:
    """One INSERT for every retry; returns {case id: attempt id}.

    A case whose invoice already has an attempt in flight (a portal payment, a staff retry) gets none: the
    partial unique index refuses it and ``ON CONFLICT DO NOTHING`` skips it. So does a number taken by a
    concurrent attempt since we read the invoice's last number.
    """
    rows = []
    for item in retries:
        invoice = item.case.invoice
        rows.append(
            (
                invoice.pk,
                item.case.pk,
                item.method.pk if item.method else None,
                item.case.last_attempt_number + 1,
                AttemptSource.RETRY,
                AttemptStatus.PENDING,
                invoice.amount_due_minor - invoice.amount_paid_minor,
                invoice.currency,
                gateway,
                "",
                "",
                "",
                "",
                "",
                now,
            )
        )
    inserted = insert_rows(
        PaymentAttempt,
        PENDING_ATTEMPT_COLUMNS,
        rows,
        on_conflict_do_nothing=True,
        returning=("case", "id"),
    )
    return dict(inserted)  # type: ignore[arg-type]


PENDING_ATTEMPT_COLUMNS = (
    "invoice",
    "case",
    "payment_method",
    "number",
    "source",
    "status",
    "amount_minor",
    "currency",
    "gateway",
    "gateway_reference",
    "decline_processor",
    "decline_code",
    "decline_category",
    "message",
    "created_at",
)


def _run_batch(
    *,
    size: int,
    now: datetime,
    lease: timedelta,
    gateway: PaymentGateway,
    versions: Versions,
    table: DeclineTable,
    summary: TickSummary,
) -> int:
    """Claim and process one batch; returns how many cases it claimed (0: nothing is due)."""
    soon = timedelta(minutes=settings.DUNNING_PROCESSING_RETRY_MINUTES)
    # Phase 1, one transaction: claim, load, insert pending attempts. Committed before any charge.
    with transaction.atomic():
        claim_token = claim_due_cases(now=now, limit=size, lease=lease)
        if claim_token is None:
            return 0
        planned = load_batch(claim_token, now=now, limit=size, versions=versions)
        open_invoice = [p for p in planned if not p.case.invoice.is_final]
        retries = [p for p in open_invoice if p.plan.retry_step is not None]
        attempts = _insert_pending_attempts(retries, gateway=gateway.name, now=now)

    # Phase 2: the gateway, outside any transaction.
    requests = []
    for item in retries:
        attempt_id = attempts.get(item.case.pk)
        if attempt_id is not None:
            invoice = item.case.invoice
            request = charge_request_for(
                attempt_id=attempt_id,
                amount_minor=invoice.amount_due_minor - invoice.amount_paid_minor,
                currency=invoice.currency,
                gateway=gateway.name,
                invoice=invoice,
                method=item.method,
            )
            requests.append((attempt_id, request))
    outcomes = call_gateway(gateway, requests)

    # Phase 3: record everything in one transaction.
    with transaction.atomic():
        events = EventBuffer()
        _record_batch(
            planned, attempts, outcomes, now=now, soon=soon, table=table, events=events, summary=summary
        )
        events.flush()
    summary.cases += len(planned)
    summary.batches += 1
    return len(planned)


def _record_batch(
    planned: list[PlannedCase],
    attempts: dict[int, int],
    outcomes: dict[int, Any],
    *,
    now: datetime,
    soon: timedelta,
    table: DeclineTable,
    events: EventBuffer,
    summary: TickSummary,
) -> None:
    actor = TICK_ACTOR
    transitions: dict[int, Transition] = {}
    recovered_outside: list[DunningCase] = []
    steps_to_run: list[tuple[DunningCase, int, dict[str, Any]]] = []
    to_save: list[DunningCase] = []
    settlements: list[Settlement] = []
    for item in planned:
        case, plan = item.case, item.plan
        case.claimed_until = None
        if case.invoice.is_final:
            # Invariant 2: nothing runs after payment. The invoice was closed by another route.
            if case.invoice.status == InvoiceStatus.PAID:
                transitions[case.pk] = recovery_transition(
                    case,
                    channel=RecoveryChannel.PAID_OUTSIDE,
                    amount_minor=case.invoice.amount_paid_minor,
                    now=now,
                    reason="invoice paid outside dunning",
                )
                summary.counts["closed.paid_outside"] += 1
                recovered_outside.append(case)
            else:
                transitions[case.pk] = Transition(
                    machine.Event.CANCEL, reason=f"invoice {case.invoice.status}"
                )
                summary.counts["closed.invoice_" + case.invoice.status] += 1
            to_save.append(case)
            continue
        for index, reason in plan.skipped:
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.STEP_SKIPPED,
                actor=actor,
                at=now,
                step_index=index,
                reason=reason,
            )
        summary.counts["skipped"] += len(plan.skipped)
        steps_to_run.extend((case, index, item.rules.steps[index]) for index in plan.run)
        if plan.retry_step is not None and case.pk in attempts:
            attempt_id = attempts[case.pk]
            result, error = result_or_unknown(outcomes[attempt_id])
            on_failure = after_failed_retry(
                item.rules, item.snapshot, plan, category=_category(result, table), now=now, soon=soon
            )
            # One event per retry, written with its result (it carries the step), not one per start.
            settlements.append(
                Settlement(
                    attempt_id=attempt_id,
                    invoice_id=case.invoice_id,
                    amount_minor=case.invoice.amount_due_minor - case.invoice.amount_paid_minor,
                    source=AttemptSource.RETRY,
                    payment_method_id=item.method.pk if item.method else None,
                    case=case,
                    result=result,
                    error=error,
                    counts_as_retry=True,
                    next_on_failure=on_failure,
                    retry_step=plan.retry_step,
                )
            )
            continue
        if plan.retry_step is not None:
            # Another charge of this invoice is in flight: come back to this retry shortly.
            case.next_step_index, case.next_action_at = plan.retry_step, now + timedelta(minutes=5)
            summary.counts["retry.deferred_in_flight"] += 1
        else:
            case.next_step_index, case.next_action_at = plan.next_step_index, plan.next_action_at
            if plan.finished:
                transitions[case.pk] = Transition(
                    machine.Event.EXHAUST, reason="policy finished without payment"
                )
                summary.counts["exhausted"] += 1
        to_save.append(case)

    decline_messages = {item.case.pk: table.customer_message(item.case.decline_code) for item in planned}
    summary.counts.update(
        effects.run_steps(
            steps=steps_to_run, decline_messages=decline_messages, actor=actor, now=now, events=events
        )
    )
    # One statement saves every case of the batch: those with attempt results and all the others.
    counts, saved = settle_attempts(
        settlements=settlements,
        table=table,
        actor=actor,
        now=now,
        events=events,
        extra_cases=to_save,
        extra_transitions=transitions,
    )
    summary.counts.update(counts)
    summary.counts["recovered"] += sum(1 for case in recovered_outside if case.pk in saved)


def _category(result: Any, table: DeclineTable) -> str:
    if result is None or result.succeeded:
        return ""
    return table.lookup(
        result.decline_processor or "stripe", result.decline_code or "generic_decline"
    ).category


# Objects allocated between two runs of Python's young-generation collector (default 700), while a tick
# runs. A batch allocates a few hundred thousand short-lived objects, nearly all freed by reference
# counting, so at the default the collector ran thousands of times per tick, each time also walking every
# survivor: about a third of the tick's time. Cycles are still collected, just less often.
TICK_GC_THRESHOLD = 50_000
_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] = (0, 0, 0)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the collector's threshold while any tick of this process runs, then put it back."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(TICK_GC_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)


def tick_workers() -> int:
    """How many batches this process works on at once (``DUNNING_TICK_WORKERS``).

    A batch spends about half its time waiting for the database, so a second worker on its own
    connection keeps Python busy meanwhile; claims never overlap (see ``claim_due_cases``). One worker on
    SQLite (one writer at a time) and inside a caller's transaction, which other connections cannot see.
    """
    if connection.vendor == "sqlite" or connection.in_atomic_block:
        return 1
    return max(1, settings.DUNNING_TICK_WORKERS)


def run_tick(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    batch_size: int | None = None,
    gateway: PaymentGateway | None = None,
    progress: Callable[[TickSummary], None] | None = None,
    workers: int | None = None,
) -> TickSummary:
    """Run every due step once. ``now`` lets staff preview and tests travel in time.

    ``workers`` (default :func:`tick_workers`) batches run at once, each on its own database connection;
    with a ``limit`` one worker claims, so the limit is exact.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.DUNNING_BATCH_SIZE
    lease = timedelta(seconds=settings.DUNNING_CLAIM_LEASE_SECONDS)
    summary = TickSummary(dry_run=dry_run)
    if dry_run:
        versions = Versions()
        for item in load_batch(None, now=now, limit=limit or batch_size, versions=versions):
            summary.cases += 1
            summary.counts.update(item.rules.steps[i]["action"] for i in item.plan.run)
            summary.counts["skipped"] += len(item.plan.skipped)
            summary.counts["retry"] += item.plan.retry_step is not None
            summary.counts["exhausted"] += item.plan.finished
        summary.batches = 1 if summary.cases else 0
        return summary
    workers = 1 if limit is not None else (workers or tick_workers())
    owns_gateway = gateway is None
    gateway = gateway or get_gateway()
    try:
        summary.counts.update(attempts_reconcile(gateway=gateway, actor=TICK_ACTOR, now=now))
        batches = _BatchLoop(
            now=now,
            lease=lease,
            gateway=gateway,
            batch_size=batch_size,
            limit=limit,
            summary=summary,
            progress=progress,
        )
        with _fewer_collections():
            if workers == 1:
                batches.work()
            else:
                batches.work_in_threads(workers)
    finally:
        if owns_gateway:
            gateway.close()
    tick_finished.send(sender=TickSummary, now=now, summary=summary)
    return summary


class _BatchLoop:
    """Claims and runs batches until nothing is due (or ``limit`` cases are done), on one or more threads."""

    def __init__(
        self,
        *,
        now: datetime,
        lease: timedelta,
        gateway: PaymentGateway,
        batch_size: int,
        limit: int | None,
        summary: TickSummary,
        progress: Callable[[TickSummary], None] | None,
    ) -> None:
        self.now, self.lease, self.gateway = now, lease, gateway
        self.batch_size, self.remaining = batch_size, limit
        self.summary, self.progress = summary, progress
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []

    def work(self) -> None:
        # Per worker: the caches are filled as batches need them and are not shared between threads.
        versions, table = Versions(), DeclineTable()
        while True:
            with self.lock:
                if self.errors or (self.remaining is not None and self.remaining <= 0):
                    return
                size = self.batch_size if self.remaining is None else min(self.batch_size, self.remaining)
            batch = TickSummary()
            claimed = _run_batch(
                size=size,
                now=self.now,
                lease=self.lease,
                gateway=self.gateway,
                versions=versions,
                table=table,
                summary=batch,
            )
            with self.lock:
                self.summary.counts.update(batch.counts)
                self.summary.cases += batch.cases
                self.summary.batches += batch.batches
                if self.remaining is not None:
                    self.remaining -= claimed
                if claimed < size:
                    return  # nothing more is due (or others hold it): no need for an empty claim
                if self.progress is not None:
                    self.progress(self.summary)

    def work_in_threads(self, workers: int) -> None:
        def thread_main() -> None:
            try:
                self.work()
            except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread
                with self.lock:
                    self.errors.append(error)
            finally:
                connections.close_all()  # this thread's own connection

        threads = [threading.Thread(target=thread_main, name=f"tick-worker-{n}") for n in range(1, workers)]
        for thread in threads:
            thread.start()
        try:
            self.work()
        except BaseException as error:
            with self.lock:
                self.errors.append(error)
        for thread in threads:
            thread.join()
        if self.errors:
            raise self.errors[0]
