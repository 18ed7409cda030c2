"""Operations records of the whole installation (not of one app): when the dunning tick last ran."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class TickRun(models.Model):
    """One finished dunning tick, recorded from ``dunning.signals.tick_finished`` for the admin home.

    ``duration_seconds`` is the wall-clock time from the tick's start to its end. A tick run at another
    moment (``run_dunning --now``, a preview or a test travelling in time) has no measurable duration.
    Rows older than :data:`KEEP_FOR` are dropped as new ones arrive.
    """

    finished_at = models.DateTimeField(default=timezone.now, db_index=True)
    tick_time = models.DateTimeField(help_text="The moment the tick ran for (``--now``, or when it started).")
    duration_seconds = models.FloatField(null=True, blank=True)
    cases = models.PositiveIntegerField(default=0, help_text="Due cases processed.")
    batches = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text="What it did, by kind.")

    class Meta:
        ordering = ["-finished_at", "-id"]
        verbose_name = "tick run"

    def __str__(self) -> str:
        return f"Tick finished {self.finished_at:%Y-%m-%d %H:%M:%S}"
