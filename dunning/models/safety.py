"""Money-safety records: double payments to refund, and the gateway circuit breaker."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Customer, Invoice
from dunning.models.attempts import PaymentAttempt
from dunning.models.cases import DunningCase


class DoublePaymentReason(models.TextChoices):
    ALREADY_PAID = "already_paid", "The invoice was already paid"
    INVOICE_CLOSED = "invoice_closed", "The invoice was already void or uncollectible"


class DoublePaymentStatus(models.TextChoices):
    OPEN = "open", "Open: money to give back"
    REFUNDED = "refunded", "Refunded"
    REFUND_FAILED = "refund_failed", "Refund failed"
    DISMISSED = "dismissed", "Dismissed by staff"


class DoublePayment(models.Model):
    """A charge that moved money for an invoice someone or something had already paid (or closed).

    One row per such attempt, written in the transaction that records the attempt's result, so it is
    flagged exactly once however often the result is reported. Staff refund it (one click, through the
    gateway) or dismiss it with a reason.
    """

    attempt = models.OneToOneField(PaymentAttempt, on_delete=models.PROTECT, related_name="double_payment")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="double_payments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="double_payments")
    case = models.ForeignKey(
        DunningCase, null=True, blank=True, on_delete=models.PROTECT, related_name="double_payments"
    )
    reason = models.CharField(max_length=20, choices=DoublePaymentReason.choices)
    status = models.CharField(
        max_length=16, choices=DoublePaymentStatus.choices, default=DoublePaymentStatus.OPEN
    )
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    gateway = models.CharField(max_length=30)
    gateway_reference = models.CharField(max_length=100, blank=True)
    detected_at = models.DateTimeField(default=timezone.now)
    details = models.JSONField(default=dict, blank=True)
    refund_reference = models.CharField(max_length=100, blank=True)
    refund_error = models.CharField(max_length=500, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        permissions = [("refund_doublepayment", "Can refund or dismiss a double payment")]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0), name="double_payment_amount_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DoublePaymentStatus.values), name="double_payment_status_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["detected_at"],
                condition=Q(status__in=["open", "refund_failed"]),
                name="double_payment_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Double payment on invoice {self.invoice_id} (attempt {self.attempt_id})"


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed: charging"
    OPEN = "open", "Open: charging paused"
    HALF_OPEN = "half_open", "Half open: probing"


class GatewayCircuit(models.Model):
    """Per gateway: recent call outcomes, and whether scheduled charging is paused after an outage.

    Gateway failures (timeouts, 5xx, rate limits) never count against a customer's retry budget; this
    breaker caps them instead. It opens when too many recent calls failed, pauses the tick's retries until
    ``retry_at``, then lets one small batch probe the gateway.
    """

    gateway = models.CharField(max_length=30, unique=True)
    state = models.CharField(max_length=10, choices=CircuitState.choices, default=CircuitState.CLOSED)
    window_started_at = models.DateTimeField(default=timezone.now)
    window_calls = models.PositiveIntegerField(default=0)
    window_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    times_opened = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "gateway circuit breaker"
        permissions = [("reset_gatewaycircuit", "Can close a gateway circuit breaker by hand")]

    def __str__(self) -> str:
        return f"{self.gateway}: {self.get_state_display()}"
