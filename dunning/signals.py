"""Signals the dunning engine sends, for layers above it (they may listen; dunning never imports them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal

if TYPE_CHECKING:
    from customers.models import Customer
    from customers.privacy import Erasure

# Sent by ``run_tick`` after a tick (not a dry run) has committed all its work, with ``now`` (the tick's
# time) and ``summary`` (its TickSummary). Reporting refreshes its rollups on it. A receiver's error
# propagates to the tick, so receivers must catch their own.
tick_finished = Signal()

# How long the tick that is finishing has run, for receivers of ``tick_finished``: the entry points that run
# ticks in production (the scheduled task, ``run_dunning``) time them with ``timed_tick``.
_tick_started: ContextVar[float | None] = ContextVar("tick_started", default=None)


@contextmanager
def timed_tick() -> Iterator[None]:
    token = _tick_started.set(time.monotonic())
    try:
        yield
    finally:
        _tick_started.reset(token)


def tick_elapsed_seconds() -> float | None:
    """Seconds since the current ``timed_tick`` began, or None outside one (a tick run another way)."""
    started = _tick_started.get()
    return None if started is None else time.monotonic() - started


# --- Receivers of the layers below (connected in DunningConfig.ready) -----------------------------------


def on_customer_erasing(sender: Any, erasure: Erasure, **kwargs: Any) -> dict[str, int]:
    from dunning.services.privacy import dunning_erase_customer

    return dunning_erase_customer(erasure=erasure)


def on_customer_data_requested(sender: Any, customer: Customer, **kwargs: Any) -> dict[str, Any]:
    from dunning.services.privacy import dunning_customer_data

    return dunning_customer_data(customer=customer)
