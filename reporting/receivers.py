"""Reporting listens to the dunning engine: after every tick, the metrics' tick figures are recorded and the
rollups catch up."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from reporting.services import rollups_refresh
from reporting.services.operations import tick_figures_record

logger = logging.getLogger(__name__)


def refresh_after_tick(sender: Any, **kwargs: Any) -> None:
    """Refresh on wall-clock time, whatever time the tick ran at (``--now`` previews and tests travel)."""
    if not settings.REPORTING_REFRESH_AFTER_TICK:
        return  # refreshed by ``refresh_reports`` on a schedule of the operator's choosing instead
    try:
        rollups_refresh()
    except Exception:
        # The reports can wait for the next tick; the tick that collected money must not fail for them.
        logger.exception("reporting: refreshing the rollups after the tick failed; the next tick retries")


def record_tick_figures(sender: Any, summary: Any, **kwargs: Any) -> None:
    """The metrics endpoint's tick counters and last-tick figures (wall-clock time, not the tick's ``now``)."""
    try:
        tick_figures_record(
            counts=dict(summary.counts),
            cases=summary.cases,
            duration_seconds=summary.duration_seconds,
            finished_at=timezone.now(),
        )
    except Exception:
        logger.exception("reporting: recording the tick's figures for the metrics failed")
