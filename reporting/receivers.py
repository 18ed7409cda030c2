"""Reporting listens to the dunning engine: after every tick, the rollups catch up."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from reporting.services import rollups_refresh

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
