"""The outbox: one row per message and recipient, and the list of addresses that must not be mailed."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Customer, Invoice


class Channel(models.TextChoices):
    EMAIL = "email", "Email"


class Audience(models.TextChoices):
    """Customer messages count towards the cap and respect quiet hours; staff alerts do neither."""

    CUSTOMER = "customer", "Customer"
    STAFF = "staff", "Staff"


class NotificationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    SUPPRESSED = "suppressed", "Suppressed"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"


# Rows in these statuses went out, or are about to: they count towards the customer's cap.
CAP_COUNTED_STATUSES: tuple[str, ...] = (
    NotificationStatus.QUEUED,
    NotificationStatus.SENDING,
    NotificationStatus.SENT,
    NotificationStatus.BOUNCED,
)
FINAL_NOTIFICATION_STATUSES: frozenset[str] = frozenset(
    {
        NotificationStatus.SENT,
        NotificationStatus.SUPPRESSED,
        NotificationStatus.SKIPPED,
        NotificationStatus.FAILED,
        NotificationStatus.BOUNCED,
    }
)


class ReasonCode(models.TextChoices):
    """Why a row did not (or not yet) go out: a stable code for filters and reports, next to the text."""

    CAPPED = "capped", "Contact cap reached"
    UNDELIVERABLE = "undeliverable", "Address undeliverable"
    NO_RECIPIENT = "no_recipient", "No recipient"
    INVOICE_CLOSED = "invoice_closed", "Invoice no longer open"
    GUARD = "guard", "Stopped by a send guard"
    CANCELLED = "cancelled", "Cancelled"
    QUIET_HOURS = "quiet_hours", "Delayed for quiet hours"
    RETRYING = "retrying", "Transient error, retrying"
    PERMANENT_ERROR = "permanent_error", "Refused by the provider"
    GAVE_UP = "gave_up", "Too many transient errors"
    INTERRUPTED = "interrupted", "Interrupted while sending"
    RENDER_ERROR = "render_error", "Template did not render"
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    SOFT_BOUNCE = "soft_bounce", "Soft bounce"
    COMPLAINT = "complaint", "Spam complaint"


class Notification(models.Model):
    """One message to one recipient on one channel.

    Created in the same transaction as the dunning step that wants it and dispatched after commit.
    Unique per (case, step, channel, recipient); without a case, per (customer, step, channel, recipient).
    ``case_ref`` and ``step_ref`` are plain values chosen by the dunning engine, never foreign keys:
    this app does not know the dunning tables.
    """

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    case_ref = models.BigIntegerField(null=True, blank=True, help_text="The dunning case id, if any.")
    step_ref = models.CharField(max_length=100, help_text="The dunning step that asked for it.")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.CUSTOMER)
    template_key = models.CharField(max_length=64)
    locale = models.CharField(max_length=16, blank=True)
    recipient = models.EmailField(max_length=254, blank=True, help_text="Lowercased.")
    recipient_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.QUEUED
    )
    reason_code = models.CharField(max_length=32, choices=ReasonCode.choices, blank=True)
    status_reason = models.TextField(blank=True)
    # Capped messages are not blocked when this is set (final notice, recovered confirmation).
    bypass_cap = models.BooleanField(default=False)
    # Asked for by the customer (a fresh portal link): neither counted nor capped, and not held for quiet
    # hours, since the customer is waiting for it.
    customer_requested = models.BooleanField(default=False)
    # Reminders stop once the invoice is paid or the case closes (checked at send time). Messages about
    # the outcome itself (the recovered confirmation, win-back) set this to False.
    only_while_unpaid = models.BooleanField(default=True)
    send_after = models.DateTimeField(default=timezone.now, help_text="Not sent before this time (UTC).")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set by the conditional UPDATE that claims a row for sending: a second worker finds nothing to claim.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    # "<case>:<step>": the message this row is one recipient of. The cap counts distinct messages, not
    # recipients, so mailing three contacts about one failure uses one of the customer's allowance.
    message_key = models.CharField(max_length=130, blank=True)
    # All rows inserted by one enqueue call share it, so the call can read back exactly what it created.
    batch = models.UUIDField(null=True, blank=True, editable=False)
    message_id = models.CharField(max_length=255, blank=True, help_text="Our Message-ID header.")
    esp_message_id = models.CharField(max_length=255, blank=True, help_text="The provider's message id.")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["case_ref", "step_ref", "channel", "recipient"],
                condition=Q(case_ref__isnull=False),
                name="notification_unique_case_step",
            ),
            models.UniqueConstraint(
                fields=["customer", "step_ref", "channel", "recipient"],
                condition=Q(case_ref__isnull=True, customer__isnull=False),
                name="notification_unique_customer_step",
            ),
            models.UniqueConstraint(
                fields=["step_ref", "channel", "recipient"],
                condition=Q(case_ref__isnull=True, customer__isnull=True),
                name="notification_unique_step",
            ),
            models.CheckConstraint(
                condition=Q(status__in=NotificationStatus.values), name="notification_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=Channel.values), name="notification_channel_valid"
            ),
            models.CheckConstraint(condition=~Q(step_ref=""), name="notification_step_ref_not_empty"),
        ]
        indexes = [
            # The dispatcher's "what is due" query.
            models.Index(
                fields=["send_after"],
                condition=Q(status="queued"),
                name="notification_queued_due_idx",
            ),
            # The cap: customer messages per customer in the last 7 days.
            models.Index(fields=["customer", "created_at"], name="notification_customer_time_idx"),
            # Reporting and the dunning side: messages per case.
            models.Index(fields=["case_ref", "status"], name="notification_case_idx"),
            models.Index(fields=["batch"], name="notification_batch_idx"),
            models.Index(fields=["esp_message_id"], name="notification_esp_id_idx"),
            models.Index(fields=["status", "-created_at"], name="notification_status_time_idx"),
            models.Index(fields=["-created_at", "-id"], name="notification_created_desc_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.template_key} to {self.recipient or '(nobody)'} [{self.status}]"


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    INVALID = "invalid", "Invalid address"
    MANUAL = "manual", "Added by staff"


class SuppressedAddress(models.Model):
    """An address that must not be mailed again: hard bounces, complaints, or staff's decision.

    Kept here rather than on the contact, so it covers every place the address appears (contacts and
    the customer's own email). Deleting the row makes the address deliverable again.
    """

    email = models.EmailField(max_length=254, unique=True, help_text="Lowercased.")
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    details = models.TextField(blank=True)
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "undeliverable address"
        verbose_name_plural = "undeliverable addresses"

    def __str__(self) -> str:
        return f"{self.email} ({self.get_reason_display()})"
