"""Signals the dunning engine sends, for layers above it (they may listen; dunning never imports them)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by ``run_tick`` after a tick (not a dry run) has committed all its work, with ``now`` (the tick's
# time) and ``summary`` (its TickSummary). Reporting refreshes its rollups on it. A receiver's error
# propagates to the tick, so receivers must catch their own.
tick_finished = Signal()
