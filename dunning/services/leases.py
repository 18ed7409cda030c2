"""Claims that stay alive while their owner works: a clock, and a keeper that renews leases (a heartbeat).

A tick claims cases and the attempts it creates with a token and a lease (``claimed_until``). Nobody
else touches them until the lease ends; an owner that is still working renews it well before then, from a
background thread, so a charge phase slower than the lease (a slow, rate-limited gateway) keeps its
claim. An owner that cannot renew (its database connection broke, its thread starved) stops sending new
charges before the lease can run out: someone else may take the claim over after that, and must never
find a request of ours still on its way. Claims taken over are settled with the gateway's records or by
sending the same idempotency key again, never by assuming.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from types import TracebackType

from django.db import connection, connections

from dunning.models import IN_FLIGHT_STATUSES, DunningCase, PaymentAttempt

logger = logging.getLogger(__name__)


class Clock:
    """The tick's ``now`` moving on in real time: leases are measured in real seconds even when a tick runs
    at another moment (``--now``), so a slow tick at a fixed ``now`` still sees its leases age."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._origin = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._origin)


def background_renewal_possible() -> bool:
    """A second connection can renew only committed claims on a database that takes concurrent writers."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


class LeaseKeeper:
    """Renews every claim token it holds, every quarter of a lease, until it is closed.

    ``may_send(token)`` is asked before each charge: it is true while at least half of the token's lease
    is left, which a working heartbeat always keeps true. Without a background thread (SQLite, or inside
    a caller's transaction) nothing is renewed and the owner simply stops sending at half its lease.
    """

    def __init__(self, *, clock: Clock, lease: timedelta, background: bool | None = None) -> None:
        self.clock = clock
        self.lease = lease
        self.background = background_renewal_possible() if background is None else background
        self._valid_until: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0
        self.failures = 0

    # --- tokens ---------------------------------------------------------------------------------------
    def add(self, token: str, claimed_until: datetime) -> None:
        with self._lock:
            self._valid_until[token] = claimed_until
        if self.background and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
            self._thread.start()

    def remove(self, token: str) -> None:
        with self._lock:
            self._valid_until.pop(token, None)

    def may_send(self, token: str) -> bool:
        with self._lock:
            until = self._valid_until.get(token)
        return until is not None and self.clock() + self.lease / 2 < until

    # --- the heartbeat --------------------------------------------------------------------------------
    @property
    def interval_seconds(self) -> float:
        return max(0.05, self.lease.total_seconds() / 4)

    def renew_now(self) -> None:
        """Extend every held lease that has not ended yet (one statement per table)."""
        with self._lock:
            tokens = list(self._valid_until)
        if not tokens:
            return
        started = self.clock()
        until = started + self.lease
        try:
            renew_claims(tokens=tokens, until=until, now=started)
        except Exception:  # noqa: BLE001 - a failed renewal must not kill the owner; it stops sending instead
            self.failures += 1
            logger.exception("could not renew the tick's claims; charging stops before they run out")
            return
        self.renewals += 1
        with self._lock:
            for token in tokens:
                # A lease that ran out before this renewal may already belong to someone else.
                if token in self._valid_until and self._valid_until[token] > started:
                    self._valid_until[token] = until

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_seconds):
                self.renew_now()
        finally:
            connections.close_all()  # this thread's own connection

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def renew_claims(*, tokens: list[str], until: datetime, now: datetime) -> None:
    """Push the leases of ``tokens`` to ``until``, on rows still held under them and not yet expired."""
    DunningCase.objects.filter(claim_token__in=tokens, claimed_until__gt=now).update(claimed_until=until)
    PaymentAttempt.objects.filter(
        claim_token__in=tokens, status__in=IN_FLIGHT_STATUSES, claimed_until__gt=now
    ).update(claimed_until=until)
