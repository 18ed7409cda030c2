"""The learnt retry-timing model: one row per nightly rebuild (``learn_retry_timing``); the newest is used."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class RetryTimingModel(models.Model):
    built_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts_counted = models.BigIntegerField(default=0, help_text="Processed tick retries it learnt from.")
    customers_with_payday = models.BigIntegerField(default=0)
    duration_seconds = models.FloatField(default=0.0)
    # dunning.timing.model.TimingModel.to_json(): success counts by decline code, feature and level.
    model = models.JSONField(default=dict)

    class Meta:
        ordering = ["-built_at"]
        get_latest_by = "built_at"
        verbose_name = "retry timing model"

    def __str__(self) -> str:
        return f"Retry timing model of {self.built_at:%Y-%m-%d %H:%M} UTC ({self.attempts_counted:,} retries)"
