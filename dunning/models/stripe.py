"""The Stripe webhook inbox: every event Stripe sent (or reconciliation found), stored before processing.

Not to be confused with ``notifications`` webhooks, which this application *sends* to the product.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class StripeEventStatus(models.TextChoices):
    RECEIVED = "received", "Received (to process)"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"
    IGNORED = "ignored", "Ignored"


class StripeEventSource(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    RECONCILE = "reconcile", "Reconciliation (missed webhook)"


class StripeEvent(models.Model):
    """One Stripe event, unique on Stripe's event id: a duplicate delivery changes nothing."""

    event_id = models.CharField(max_length=255, unique=True, help_text="Stripe's id, evt_…")
    type = models.CharField(max_length=100, help_text="e.g. invoice.payment_failed")
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=40, blank=True)
    stripe_created_at = models.DateTimeField(
        null=True, blank=True, help_text="When Stripe created the event."
    )
    payload = models.JSONField(help_text="The event as Stripe sent it. Handlers treat it as a hint.")
    source = models.CharField(
        max_length=16, choices=StripeEventSource.choices, default=StripeEventSource.WEBHOOK
    )
    status = models.CharField(
        max_length=16, choices=StripeEventStatus.choices, default=StripeEventStatus.RECEIVED
    )
    result = models.CharField(max_length=500, blank=True, help_text="What processing did, in words.")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times processing started.")
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    # A worker processing the event holds it until then; an expired lease may be taken over.
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [("replay_stripeevent", "Can replay Stripe events")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=StripeEventStatus.values), name="stripe_event_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(source__in=StripeEventSource.values), name="stripe_event_source_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["-received_at", "-id"], name="stripe_event_received_idx"),
            models.Index(fields=["status", "received_at"], name="stripe_event_status_idx"),
            models.Index(fields=["type"], name="stripe_event_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"

    @property
    def data_object(self) -> dict[str, object]:
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        return obj if isinstance(obj, dict) else {}
