"""Dunning cases (one per failed invoice) and their audited timeline."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import ActorStamped, Customer, Invoice, PaymentMethod
from dunning.models.declines import DeclineCategory
from dunning.models.policies import PolicyVersion


class CaseState(models.TextChoices):
    OPEN = "open", "Open"
    PAUSED = "paused", "Paused"
    RECOVERED = "recovered", "Recovered"
    EXHAUSTED = "exhausted", "Exhausted"
    CANCELLED = "cancelled", "Cancelled"
    HANDED_OFF = "handed_off", "Handed off to collections"


class RecoveryChannel(models.TextChoices):
    """How the money came back; recorded when it happens, for the recovery-by-channel report."""

    SILENT_RETRY = "silent_retry", "Silent retry"
    EMAIL_PORTAL = "email_portal", "Email → portal"
    BANNER_PORTAL = "banner_portal", "Banner → portal"
    PORTAL = "portal", "Portal (other link)"
    CARD_UPDATED = "card_updated", "Card updated"
    STAFF = "staff", "Staff action"
    PAID_OUTSIDE = "paid_outside", "Paid outside (webhook)"


class DunningCase(models.Model):
    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="dunning_case")
    # Indexed by case_customer_state_idx (customer, state) below.
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="dunning_cases", db_index=False
    )
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="cases")
    state = models.CharField(max_length=16, choices=CaseState.choices, default=CaseState.OPEN)
    amount_minor = models.BigIntegerField(help_text="Amount due when the case opened, in minor units.")
    currency = models.CharField(max_length=3)
    opened_at = models.DateTimeField(
        default=timezone.now, help_text="The first failure; day 0 of the policy."
    )
    # Progress through the frozen policy steps.
    next_step_index = models.PositiveSmallIntegerField(default=0)
    next_action_at = models.DateTimeField(null=True, blank=True)
    retry_count = models.PositiveSmallIntegerField(default=0)
    # Pausing shifts the remaining schedule by the time spent paused.
    paused_at = models.DateTimeField(null=True, blank=True)
    schedule_shift_seconds = models.BigIntegerField(default=0)
    # Work claims: a tick leases the case until this time; an expired lease may be taken over.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(
        max_length=32, blank=True, db_default="", help_text="Which tick batch holds the claim."
    )
    # The latest decline.
    decline_code = models.CharField(max_length=64, blank=True)
    # The decline that opened the case (decline_code follows the latest one).
    first_decline_code = models.CharField(max_length=64, blank=True, db_default="")
    # The last failed charge (the case's opening failure until a retry fails): smart timing counts from it.
    last_failure_at = models.DateTimeField(null=True, blank=True)
    # The smart retry slot chosen for the step at ``step`` and why (dunning.timing.model.SlotChoice.to_json,
    # plus "step", and "skip" when the best estimate stayed under the policy's threshold); {} otherwise.
    retry_timing = models.JSONField(default=dict, blank=True, db_default={})
    decline_category = models.CharField(max_length=32, choices=DeclineCategory.choices, blank=True)
    hard_declined_payment_method = models.ForeignKey(
        PaymentMethod,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="Hard or fraud decline: never retried on this method; retries resume when it changes.",
    )
    needs_staff_review = models.BooleanField(default=False, help_text="Set on fraud declines.")
    # Outcome.
    recovered_at = models.DateTimeField(null=True, blank=True)
    recovery_channel = models.CharField(max_length=20, choices=RecoveryChannel.choices, blank=True)
    recovered_amount_minor = models.BigIntegerField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Optimistic concurrency: every write through ``cases_save`` checks the version it read and bumps it,
    # so a writer holding a stale copy loses (and re-reads) instead of undoing a newer decision.
    version = models.PositiveIntegerField(default=0, db_default=0, editable=False)

    class Meta:
        ordering = ["-opened_at", "-id"]
        permissions = [
            ("retry_dunningcase", "Can retry a charge now"),
            ("mark_paid_dunningcase", "Can mark an invoice paid offline"),
            ("manage_dunningcase", "Can pause, resume, cancel, hand off and annotate cases"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=CaseState.values), name="case_state_valid"),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="case_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(recovery_channel="") | Q(recovery_channel__in=RecoveryChannel.values),
                name="case_recovery_channel_valid",
            ),
            # Recovered means the channel and amount were recorded.
            models.CheckConstraint(
                condition=~Q(state=CaseState.RECOVERED)
                | (Q(recovered_at__isnull=False) & ~Q(recovery_channel="")),
                name="case_recovery_recorded",
            ),
        ]
        indexes = [
            # The tick's claim query: open cases by next action time.
            models.Index(
                fields=["next_action_at", "id"], condition=Q(state=CaseState.OPEN), name="case_due_idx"
            ),
            models.Index(fields=["state", "-opened_at"], name="case_state_opened_idx"),
            models.Index(fields=["customer", "state"], name="case_customer_state_idx"),
            # Partial indexes: only the few claimed or hard-declined rows are in them, so the many
            # updates of other cases never touch them.
            models.Index(
                fields=["claim_token"], condition=Q(claimed_until__isnull=False), name="case_claim_idx"
            ),
            # The few cases flagged for staff (fraud, double payments): the admin home counts them.
            models.Index(fields=["id"], condition=Q(needs_staff_review=True), name="case_review_idx"),
            models.Index(
                fields=["hard_declined_payment_method"],
                condition=Q(hard_declined_payment_method__isnull=False),
                name="case_hard_declined_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Case {self.pk}"

    @classmethod
    def from_db(cls, db: str | None, field_names: list[str], values: list[object]) -> DunningCase:
        instance = super().from_db(db, field_names, values)
        # The state as read: the writer only updates the row if nobody changed it since.
        instance.loaded_state = instance.__dict__.get("state", "")
        instance.loaded_version = instance.__dict__.get("version")
        return instance

    @property
    def is_active(self) -> bool:
        return self.state in (CaseState.OPEN, CaseState.PAUSED)


class CaseEventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    FAILURE_REPORTED = "failure_reported", "Failure reported"
    STATE_CHANGED = "state_changed", "State changed"
    STEP_DONE = "step_done", "Step done"
    STEP_SKIPPED = "step_skipped", "Step skipped"
    ATTEMPT_STARTED = "attempt_started", "Attempt started"
    ATTEMPT_SUCCEEDED = "attempt_succeeded", "Attempt succeeded"
    ATTEMPT_FAILED = "attempt_failed", "Attempt failed"
    ATTEMPT_UNKNOWN = "attempt_unknown", "Attempt outcome unknown"
    ATTEMPT_RECONCILED = "attempt_reconciled", "Attempt reconciled"
    ATTEMPT_NOT_PROCESSED = "attempt_not_processed", "Attempt not processed"
    DOUBLE_PAYMENT = "double_payment", "Double payment"
    RETRY_SCHEDULED = "retry_scheduled", "Smart retry scheduled"
    ENTITLEMENT = "entitlement", "Entitlement changed"
    PAYMENT_METHOD_CHANGED = "payment_method_changed", "Payment method changed"
    PORTAL = "portal", "Portal activity"
    NOTE = "note", "Staff note"


class CaseEvent(ActorStamped):
    """The case timeline. Append-only: every change to a case writes one."""

    case = models.ForeignKey(DunningCase, on_delete=models.CASCADE, related_name="events", db_index=False)
    occurred_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=24, choices=CaseEventKind.choices)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16, blank=True)
    step_index = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [
            models.Index(fields=["case", "occurred_at"], name="case_event_timeline_idx"),
            # Most events are written by the system: only staff-made ones enter this index.
            models.Index(
                fields=["actor_user"], condition=Q(actor_user__isnull=False), name="case_event_staff_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.get_kind_display()}"
