"""The project listens to the dunning engine: every finished tick is recorded for the admin home."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.models import TickRun

logger = logging.getLogger(__name__)

# Ticks are kept this long (a tick every 5 minutes: about 2,000 rows).
KEEP_FOR = timedelta(days=7)


def record_tick(sender: Any, *, now: Any, summary: Any, **kwargs: Any) -> None:
    """Store when the tick ended, how long it took and what it did; never fail the tick over it."""
    finished = timezone.now()
    try:
        with transaction.atomic():
            TickRun.objects.create(
                finished_at=finished,
                tick_time=now,
                duration_seconds=getattr(summary, "duration_seconds", None),
                cases=summary.cases,
                batches=summary.batches,
                counts={key: value for key, value in summary.counts.items() if value},
            )
            TickRun.objects.filter(finished_at__lt=finished - KEEP_FOR).delete()
    except Exception:
        logger.exception("recording the finished tick failed; the tick itself is unaffected")
