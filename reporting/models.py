"""Reporting's own tables: per-case facts, the weekly rollup, and the refresh bookkeeping.

They are derived data, rebuilt from the dunning, customers and notifications tables by
``reporting.services`` (the only writer) and read by ``reporting.selectors``. Nothing else reads or writes
them, and dropping their rows loses nothing: ``python manage.py refresh_reports --full`` rebuilds them.
Ids of other apps' rows are plain integers, not foreign keys: the facts must never hold up a change there.
"""

from __future__ import annotations

from django.db import models

from reporting.measures import MEASURES


class Dashboard(models.Model):
    """No table: Django hangs permissions on models, and this one carries the right to read the reports."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_dashboard", "Can view the recovery reports")]

    def __str__(self) -> str:
        return "Recovery reports"


class CaseFact(models.Model):
    """One dunning case, with what the reports need worked out once: its cohort dimensions, its outcome,
    its first decline, how its retries went and how many messages it took."""

    case_id = models.BigIntegerField(primary_key=True)
    customer_id = models.BigIntegerField()
    opened_at = models.DateTimeField()
    opened_week = models.DateField(help_text="Monday (UTC) of the week the case opened.")
    currency = models.CharField(max_length=3)
    segment = models.CharField(max_length=50, blank=True, help_text="The customer's segment.")
    policy_id = models.BigIntegerField()
    policy_version_id = models.BigIntegerField()
    first_decline_category = models.CharField(
        max_length=32, blank=True, help_text="Of the case's first attempt: the failure that opened it."
    )
    first_decline_code = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16)
    amount_minor = models.BigIntegerField()
    recovered_amount_minor = models.BigIntegerField(default=0)
    recovery_channel = models.CharField(max_length=20, blank=True)
    recovered_at = models.DateTimeField(null=True)
    closed_at = models.DateTimeField(null=True)
    recovery_seconds = models.BigIntegerField(null=True, help_text="recovered_at - opened_at.")
    retries = models.IntegerField(default=0, help_text="Settled attempts after the initial charge.")
    success_rank = models.IntegerField(
        default=0, help_text="Which of those retries succeeded (1 = the first); 0 when none did."
    )
    messages_sent = models.IntegerField(
        default=0, help_text="Customer messages that went out (one message to several contacts counts once)."
    )

    class Meta:
        indexes = [
            models.Index(fields=["opened_at"], name="reporting_fact_opened_idx"),
            models.Index(fields=["opened_week"], name="reporting_fact_week_idx"),
            # One more, covering on PostgreSQL, is in migration 0002: cases that ended exhausted or
            # cancelled, by closing time (involuntary churn).
        ]

    def __str__(self) -> str:
        return f"Facts of case {self.case_id}"


class RecoveryTime(models.Model):
    """One row per recovered case, with only what the medians read: a quarter of the case facts' width,
    so that a two-year median reads a few megabytes."""

    case_id = models.BigIntegerField(primary_key=True)
    opened_at = models.DateTimeField()
    hours = models.IntegerField(help_text="Whole hours from the first failure to payment.")
    currency = models.CharField(max_length=3)
    segment = models.CharField(max_length=50, blank=True)
    policy_id = models.BigIntegerField()
    policy_version_id = models.BigIntegerField()
    first_decline_category = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [models.Index(fields=["opened_at"], name="reporting_recovery_opened_idx")]

    def __str__(self) -> str:
        return f"Case {self.case_id} recovered in {self.hours} h"


class WeeklyRollup(models.Model):
    """Sums of the measures (``reporting.measures.MEASURES``) per week of opening and dimensions."""

    week_start = models.DateField()
    currency = models.CharField(max_length=3)
    policy_id = models.BigIntegerField()
    policy_version_id = models.BigIntegerField()
    segment = models.CharField(max_length=50, blank=True)
    first_decline_category = models.CharField(max_length=32, blank=True)
    first_decline_code = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "week_start",
                    "currency",
                    "policy_version_id",
                    "segment",
                    "first_decline_category",
                    "first_decline_code",
                ],
                name="reporting_rollup_key",
            )
        ]

    def __str__(self) -> str:
        return f"Week of {self.week_start} ({self.currency})"


class WeeklyTotals(models.Model):
    """The weekly rollup summed over segments and declines: a few rows per week, for every report that
    filters on neither (the default view among them)."""

    week_start = models.DateField()
    currency = models.CharField(max_length=3)
    policy_id = models.BigIntegerField()
    policy_version_id = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "weekly totals"
        constraints = [
            models.UniqueConstraint(
                fields=["week_start", "currency", "policy_version_id"], name="reporting_totals_key"
            )
        ]

    def __str__(self) -> str:
        return f"Totals of the week of {self.week_start} ({self.currency})"


# The measure columns come from the one definition the SQL uses too, so they cannot drift apart.
for _name in MEASURES:
    WeeklyRollup.add_to_class(_name, models.BigIntegerField(default=0))
    WeeklyTotals.add_to_class(_name, models.BigIntegerField(default=0))


class RefreshState(models.Model):
    """One row: what the last refresh saw, so the next one only redoes the cases that changed since."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    # Highest case event id seen, and the id above which events are read again next time (late commits).
    event_high = models.BigIntegerField(default=0)
    event_low = models.BigIntegerField(default=0)
    event_window_count = models.BigIntegerField(default=0)
    # Latest customer message sent, and the time from which sends are read again next time.
    sent_high = models.DateTimeField(null=True)
    sent_low = models.DateTimeField(null=True)
    sent_window_count = models.BigIntegerField(default=0)
    # Latest customer change (segment edits), likewise.
    customer_high = models.DateTimeField(null=True)
    customer_low = models.DateTimeField(null=True)
    customer_window_count = models.BigIntegerField(default=0)
    # Highest case id: cases inserted without any event (bulk loads) are picked up too.
    case_high = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True)
    rebuilt_at = models.DateTimeField(null=True)
    last_cases = models.IntegerField(default=0, help_text="Cases recomputed by the last refresh.")
    last_duration_ms = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"Reports refreshed at {self.refreshed_at}"


class DirtyCase(models.Model):
    """Work list of one refresh, filled and emptied inside its transaction (never visible outside it)."""

    case_id = models.BigIntegerField(primary_key=True)

    def __str__(self) -> str:
        return str(self.case_id)


class OperationsFigure(models.Model):
    """A figure for the metrics endpoint that no other table holds: cumulative tick counters (ticks, cases,
    actions by kind, gateway errors by kind) and the last tick's time, duration and size. Every tick process
    adds to them when its tick finishes (``dunning.signals.tick_finished``), so ``/metrics`` shows the same
    figures whichever process answers. Losing the rows only resets the counters, as a restart would."""

    name = models.CharField(max_length=120, primary_key=True)
    value = models.FloatField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "operations figure"

    def __str__(self) -> str:
        return f"{self.name} = {self.value:g}"
