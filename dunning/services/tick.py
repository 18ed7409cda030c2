"""The tick: reconcile unsettled attempts, then claim due cases in batches and run them.

The three phases of a batch are in ``dunning.services.tick_batch``. Several ticks on several machines
share the work without overlap; a tick that dies leaves leases that expire, and attempts that the next
tick reconciles (from the gateway's records, or by sending the same idempotency key again) before the
invoice can be charged again.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from dunning.gateways import PaymentGateway, get_gateway
from dunning.services.batch_load import Versions, load_batch
from dunning.services.circuit import Gate, circuit_counter, circuit_gate
from dunning.services.declines import DeclineTable
from dunning.services.leases import Clock, LeaseKeeper
from dunning.services.reconcile import attempts_reconcile
from dunning.services.smart_timing import current_model
from dunning.services.tick_batch import TICK_ACTOR, BatchCounts, TickContext, run_batch
from dunning.signals import tick_finished

logger = logging.getLogger(__name__)
__all__ = ["TICK_ACTOR", "TickSummary", "run_tick", "tick_workers"]
# How long a batch trusts the breaker's last answer "closed" before reading it again.
GATE_RECHECK_SECONDS = 30.0


@dataclass
class TickSummary:
    counts: Counter[str] = field(default_factory=Counter)
    cases: int = 0
    batches: int = 0
    dry_run: bool = False
    started_at: datetime | None = None
    duration_seconds: float = 0.0

    def lines(self) -> list[str]:
        prefix = "[dry run] would run" if self.dry_run else "ran"
        lines = [f"{prefix}: {self.cases} due case(s) in {self.batches} batch(es)"]
        for key in sorted(self.counts):
            if self.counts[key]:
                lines.append(f"  {key}: {self.counts[key]}")
        return lines


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
    started = time.monotonic()
    summary.started_at = timezone.now()
    clock = Clock(now)
    try:
        with LeaseKeeper(clock=clock, lease=lease) as keeper:
            summary.counts.update(
                attempts_reconcile(
                    gateway=gateway,
                    actor=TICK_ACTOR,
                    now=now,
                    clock=clock,
                    keeper=keeper,
                    limit=settings.DUNNING_RECONCILE_LIMIT,
                )
            )
            context = TickContext(
                now=now,
                clock=clock,
                lease=lease,
                keeper=keeper,
                gateway=gateway,
                circuit=circuit_counter(gateway.name),
                timing=current_model(),
            )
            batches = _BatchLoop(
                context, batch_size=batch_size, limit=limit, summary=summary, progress=progress
            )
            with _fewer_collections():
                if workers == 1:
                    batches.work()
                else:
                    batches.work_in_threads(workers)
            context.circuit.flush(now=clock())
    finally:
        if owns_gateway:
            gateway.close()
    summary.duration_seconds = time.monotonic() - started
    tick_finished.send(sender=TickSummary, now=now, summary=summary)
    return summary


class _GateCache:
    """The circuit breaker's answer, read again every few seconds while it says "closed" (one query per
    batch would be the tick's most frequent statement); "open" and "probe" are read for every batch."""

    def __init__(self, context: TickContext) -> None:
        self.context = context
        self._closed_until = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> Gate:
        with self._lock:
            if time.monotonic() < self._closed_until:
                return Gate.CLOSED
        gate = circuit_gate(gateway=self.context.gateway.name, now=self.context.clock())
        if gate == Gate.CLOSED:
            with self._lock:
                self._closed_until = time.monotonic() + GATE_RECHECK_SECONDS
        return gate


class _BatchLoop:
    """Claims and runs batches until nothing is due (or ``limit`` cases are done), on one or more threads."""

    def __init__(
        self,
        context: TickContext,
        *,
        batch_size: int,
        limit: int | None,
        summary: TickSummary,
        progress: Callable[[TickSummary], None] | None,
    ) -> None:
        self.context = context
        self.batch_size, self.remaining = batch_size, limit
        self.summary, self.progress = summary, progress
        self.gate = _GateCache(context)
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
            batch = BatchCounts()
            claimed = run_batch(
                self.context, size=size, versions=versions, table=table, gate_of=self.gate, summary=batch
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
