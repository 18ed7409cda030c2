"""The gateway circuit breaker: outages are capped here, never against a customer's retry budget.

A charge that never reached the processor (timeout, 5xx, rate limit, network) says nothing about the
customer's card. When many recent scheduled charges failed that way, the breaker opens: the tick stops
starting retries (it defers them, and goes on with emails and other steps), staff get a task, and after a
cool-down one batch of a few retries probes the gateway. A healthy probe closes the breaker; a failing
one opens it again for longer. The state lives in the database, shared by every tick process.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import IntegrityError, transaction

from dunning.models import CircuitState, GatewayCircuit
from dunning.services import communication

logger = logging.getLogger(__name__)
# Counts of a batch without failures are kept in the process and written at most this often.
FLUSH_EVERY_SECONDS = 10.0
MAX_COOLDOWN_DOUBLINGS = 4


class Gate(StrEnum):
    CLOSED = "closed"  # charge as usual
    PROBE = "probe"  # this batch probes the gateway with a few retries
    OPEN = "open"  # no scheduled charges now


@dataclass(frozen=True)
class CircuitSettings:
    min_failures: int
    failure_ratio: float
    window: timedelta
    cooldown: timedelta
    probe_size: int

    @classmethod
    def current(cls) -> CircuitSettings:
        return cls(
            min_failures=settings.DUNNING_CIRCUIT_MIN_FAILURES,
            failure_ratio=settings.DUNNING_CIRCUIT_FAILURE_RATIO,
            window=timedelta(seconds=settings.DUNNING_CIRCUIT_WINDOW_SECONDS),
            cooldown=timedelta(seconds=settings.DUNNING_CIRCUIT_COOLDOWN_SECONDS),
            probe_size=settings.DUNNING_CIRCUIT_PROBE_SIZE,
        )


def _row(gateway: str) -> GatewayCircuit:
    try:
        with transaction.atomic():
            return GatewayCircuit.objects.select_for_update().get_or_create(gateway=gateway)[0]
    except IntegrityError:  # created by another process at the same moment
        return GatewayCircuit.objects.select_for_update().get(gateway=gateway)


def circuit_gate(*, gateway: str, now: datetime) -> Gate:
    """May this batch start scheduled charges? A due probe is claimed by exactly one batch."""
    circuit = GatewayCircuit.objects.filter(gateway=gateway).only("state", "retry_at").first()
    if circuit is None or circuit.state == CircuitState.CLOSED:
        return Gate.CLOSED
    if circuit.retry_at is not None and circuit.retry_at > now:
        return Gate.OPEN
    cooldown = CircuitSettings.current().cooldown
    claimed = GatewayCircuit.objects.filter(
        gateway=gateway, state__in=[CircuitState.OPEN, CircuitState.HALF_OPEN], retry_at__lte=now
    ).update(state=CircuitState.HALF_OPEN, retry_at=now + cooldown)
    return Gate.PROBE if claimed else Gate.OPEN


def circuit_record(
    *, gateway: str, calls: int, failures: int, now: datetime, last_error: str = "", probe: bool = False
) -> str:
    """Add a batch's gateway calls and failures; open, re-open or close the breaker. Returns its state."""
    config = CircuitSettings.current()
    opened = False
    with transaction.atomic():
        circuit = _row(gateway)
        if probe:
            healthy = calls > 0 and failures < config.failure_ratio * calls
            if healthy:
                circuit.state, circuit.retry_at, circuit.opened_at = CircuitState.CLOSED, None, None
                circuit.window_started_at, circuit.window_calls, circuit.window_failures = now, 0, 0
                logger.warning("gateway %s answered again: the circuit breaker is closed", gateway)
            else:
                doublings = min(circuit.times_opened, MAX_COOLDOWN_DOUBLINGS)
                circuit.state, circuit.retry_at = CircuitState.OPEN, now + config.cooldown * 2**doublings
                circuit.times_opened += 1
        else:
            if circuit.window_started_at + config.window < now:
                circuit.window_started_at, circuit.window_calls, circuit.window_failures = now, 0, 0
            circuit.window_calls += calls
            circuit.window_failures += failures
            if (
                circuit.state == CircuitState.CLOSED
                and circuit.window_failures >= config.min_failures
                and circuit.window_failures >= config.failure_ratio * circuit.window_calls
            ):
                circuit.state, circuit.opened_at = CircuitState.OPEN, now
                circuit.retry_at = now + config.cooldown
                circuit.times_opened += 1
                opened = True
        if last_error:
            circuit.last_error = last_error[:500]
        circuit.save()
        if opened:
            logger.error(
                "gateway %s: %d of %d recent charges failed; scheduled charging paused until %s",
                gateway,
                circuit.window_failures,
                circuit.window_calls,
                circuit.retry_at,
            )
            communication.escalate_operations(
                title=f"Payment gateway {gateway} is failing: scheduled charging paused",
                details=(
                    f"{circuit.window_failures} of {circuit.window_calls} recent charges never got an answer "
                    f"(last error: {circuit.last_error or 'n/a'}). Retries are paused, not used up; the "
                    f"gateway is probed again at {circuit.retry_at:%Y-%m-%d %H:%M} UTC. Customers are not "
                    "affected otherwise: emails and other steps go on. See the runbook in the README."
                ),
            )
    return circuit.state


def circuit_close(*, gateway: str) -> bool:
    """Staff close the breaker by hand (the gateway is known to be back)."""
    return bool(
        GatewayCircuit.objects.filter(gateway=gateway)
        .exclude(state=CircuitState.CLOSED)
        .update(state=CircuitState.CLOSED, retry_at=None, opened_at=None, window_calls=0, window_failures=0)
    )


class CircuitCounter:
    """A process's pending counts for one gateway: batches with failures are written at once, quiet ones
    at most every ``FLUSH_EVERY_SECONDS`` (the ratio needs the calls that went well too)."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.calls = 0
        self.failures = 0
        self.last_error = ""
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def add(self, *, calls: int, failures: int, last_error: str, now: datetime) -> None:
        with self._lock:
            self.calls += calls
            self.failures += failures
            self.last_error = last_error or self.last_error
            due = self.failures > 0 or time.monotonic() - self._since > FLUSH_EVERY_SECONDS
            if not due or not self.calls:
                return
            calls, failures, error = self.calls, self.failures, self.last_error
            self.calls = self.failures = 0
            self.last_error = ""
            self._since = time.monotonic()
        circuit_record(gateway=self.gateway, calls=calls, failures=failures, now=now, last_error=error)

    def flush(self, *, now: datetime) -> None:
        """At the end of a tick: failures are written now; quiet counts wait for a later write."""
        with self._lock:
            if not self.failures:
                return
            calls, failures, error = self.calls, self.failures, self.last_error
            self.calls = self.failures = 0
            self._since = time.monotonic()
        circuit_record(gateway=self.gateway, calls=calls, failures=failures, now=now, last_error=error)


_counters: dict[str, CircuitCounter] = {}
_counters_lock = threading.Lock()


def circuit_counter(gateway: str) -> CircuitCounter:
    """The process's counter for a gateway, shared by its ticks and their workers."""
    with _counters_lock:
        counter = _counters.get(gateway)
        if counter is None:
            counter = _counters[gateway] = CircuitCounter(gateway)
        return counter
