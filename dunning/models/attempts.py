"""Payment attempts: written as pending and committed before the gateway is called."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Invoice, PaymentMethod
from dunning.models.cases import DunningCase
from dunning.models.declines import DeclineCategory


class AttemptStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown (to reconcile)"
    # Money moved, but the invoice had already been paid (or closed) by something else: a double payment,
    # flagged for a refund (see DoublePayment). Outside the one-live-attempt index on purpose.
    DUPLICATE = "duplicate", "Succeeded after the invoice was closed (double payment)"


IN_FLIGHT_STATUSES: tuple[str, ...] = (AttemptStatus.PENDING, AttemptStatus.UNKNOWN)
# Settled: the gateway answered, or a truth query did.
SETTLED_STATUSES: tuple[str, ...] = (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.DUPLICATE)


class AttemptSource(models.TextChoices):
    INITIAL = "initial", "Initial charge"
    RETRY = "retry", "Scheduled retry"
    PORTAL = "portal", "Customer portal"
    STAFF = "staff", "Staff retry"
    CARD_UPDATED = "card_updated", "Card updated"


class PaymentAttempt(models.Model):
    # Foreign keys without their own index where a composite index below starts with the column: every
    # index costs each insert, and the tick inserts thousands of attempts a second.
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="payment_attempts", db_index=False
    )
    case = models.ForeignKey(
        DunningCase, null=True, blank=True, on_delete=models.PROTECT, related_name="attempts", db_index=False
    )
    payment_method = models.ForeignKey(
        PaymentMethod,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="payment_attempts",
        db_index=False,
    )
    number = models.PositiveSmallIntegerField(help_text="1 is the first charge of the invoice.")
    source = models.CharField(max_length=16, choices=AttemptSource.choices)
    status = models.CharField(max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.PENDING)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    gateway = models.CharField(max_length=30)
    gateway_reference = models.CharField(max_length=100, blank=True)
    decline_processor = models.CharField(max_length=20, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    decline_category = models.CharField(max_length=32, choices=DeclineCategory.choices, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The policy step a scheduled retry carries out (None for staff, portal and card-updated charges).
    step_index = models.PositiveSmallIntegerField(null=True, blank=True)
    # The processor itself answered (a charge or a decline). False for attempts it never received: a gateway
    # refusal before sending, a missing record. Only processed retries count against the retry cap.
    processed = models.BooleanField(default=False, db_default=False)
    # The customer is on the portal (on-session): the gateway may ask them to authenticate.
    customer_present = models.BooleanField(default=False, db_default=False)
    # One owner at a time until the attempt is settled: whoever charges or reconciles it holds this lease
    # and renews it (a heartbeat). Only an expired lease lets someone else take the attempt over, and the
    # new owner asks the gateway (or sends the same idempotency key again); it never assumes the outcome.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, db_default="")
    # What smart timing learns from (retries the tick made): the situation when the charge was sent, in the
    # customer's local time, kept as it was then (the card or the customer may change later).
    timing_mode = models.CharField(max_length=8, blank=True, db_default="", help_text="fixed or smart")
    retried_decline_code = models.CharField(max_length=64, blank=True, db_default="")
    retried_decline_category = models.CharField(max_length=32, blank=True, db_default="")
    local_weekday = models.PositiveSmallIntegerField(null=True, blank=True)
    local_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    local_day = models.PositiveSmallIntegerField(null=True, blank=True)
    payday_days = models.PositiveSmallIntegerField(null=True, blank=True)
    hours_since_failure = models.PositiveIntegerField(null=True, blank=True)
    retry_number = models.PositiveSmallIntegerField(null=True, blank=True)
    card_funding = models.CharField(max_length=10, blank=True, db_default="")
    card_brand = models.CharField(max_length=30, blank=True, db_default="")
    amount_band = models.PositiveSmallIntegerField(null=True, blank=True)
    segment = models.CharField(max_length=50, blank=True, db_default="")
    country = models.CharField(max_length=2, blank=True, db_default="")
    predicted_success = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["invoice_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "number"], name="attempt_number_unique"),
            # Invariant 1, in the database: per invoice, at most one attempt that is in flight or succeeded.
            # A charge can start only while no other charge of the invoice is in flight and none succeeded;
            # a racing insert waits for the other transaction and is then refused, whatever its outcome.
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(status__in=[*IN_FLIGHT_STATUSES, AttemptStatus.SUCCEEDED]),
                name="attempt_one_live_per_invoice",
            ),
            models.CheckConstraint(condition=Q(status__in=AttemptStatus.values), name="attempt_status_valid"),
            models.CheckConstraint(condition=Q(source__in=AttemptSource.values), name="attempt_source_valid"),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="attempt_amount_non_negative"),
        ]
        indexes = [
            models.Index(fields=["case", "number"], name="attempt_case_idx"),
            models.Index(fields=["payment_method", "created_at"], name="attempt_method_time_idx"),
            models.Index(
                fields=["created_at"],
                condition=Q(status__in=IN_FLIGHT_STATUSES),
                name="attempt_in_flight_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} on {self.invoice_id}: {self.status}"

    @property
    def idempotency_key(self) -> str:
        return attempt_idempotency_key(self.pk)


def attempt_idempotency_key(attempt_id: int) -> str:
    """Derived from the attempt row's own id, so a retried call can only ever repeat itself.

    The prefix keeps two installations (or a restored backup) that share a gateway account apart.
    """
    return f"{settings.DUNNING_IDEMPOTENCY_PREFIX}-attempt-{attempt_id}"


class SimulatedCharge(models.Model):
    """The simulated gateway's own ledger: what it was asked and what it answered, by idempotency key.

    It plays the part of the processor's records, so tests can prove a charge never happened twice.
    """

    idempotency_key = models.CharField(max_length=120, unique=True)
    reference = models.CharField(max_length=64, unique=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    customer_ref = models.CharField(max_length=100, blank=True)
    payment_method_ref = models.CharField(max_length=100, blank=True)
    invoice_ref = models.CharField(max_length=100, blank=True)
    succeeded = models.BooleanField()
    decline_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    refunded_minor = models.BigIntegerField(default=0, db_default=0)
    refund_reference = models.CharField(max_length=64, blank=True, db_default="")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.reference} {'ok' if self.succeeded else self.decline_code}"


class SimulatedGatewayRule(models.Model):
    """Staff-editable outcomes for the simulated gateway, per customer (for demos and tests).

    ``outcomes`` is a sequence used call by call (``["insufficient_funds", "succeeded"]``); the last one
    repeats. ``fault`` injects ``timeout``, ``server_error`` or ``timeout_after_charge`` on every call.
    """

    customer_external_id = models.CharField(max_length=100, unique=True)
    outcomes = models.JSONField(default=list, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    fault = models.CharField(
        max_length=24,
        blank=True,
        choices=[
            ("timeout", "Time out before charging"),
            ("server_error", "5xx error before charging"),
            ("timeout_after_charge", "Charge, then time out"),
        ],
    )

    def __str__(self) -> str:
        return f"Simulated outcomes for {self.customer_external_id}"
