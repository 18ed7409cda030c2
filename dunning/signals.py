"""Signals the dunning engine sends, for layers above it (they may listen; dunning never imports them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.dispatch import Signal

if TYPE_CHECKING:
    from customers.models import Customer
    from customers.privacy import Erasure

# Sent by ``run_tick`` after a tick (not a dry run) has committed all its work, with ``now`` (the tick's
# time) and ``summary`` (its TickSummary, with ``duration_seconds``). Reporting refreshes its rollups on it. A receiver's error
# propagates to the tick, so receivers must catch their own.
tick_finished = Signal()

# --- Receivers of the layers below (connected in DunningConfig.ready) -----------------------------------


def on_customer_erasing(sender: Any, erasure: Erasure, **kwargs: Any) -> dict[str, int]:
    from dunning.services.privacy import dunning_erase_customer

    return dunning_erase_customer(erasure=erasure)


def on_customer_data_requested(sender: Any, customer: Customer, **kwargs: Any) -> dict[str, Any]:
    from dunning.services.privacy import dunning_customer_data

    return dunning_customer_data(customer=customer)
