"""The notifications app's part of privacy: erasing its rows about a customer, exporting them, and purging
message bodies and webhook bodies past their retention.

- Erasure (``customers.signals.customer_erasing``): the customer's messages lose their bodies, subject and
  recipient name, and their recipient becomes a placeholder (the row, its status and times stay for the
  contact cap and the reports); queued ones are suppressed, never sent. Banners, staff tasks and outgoing
  webhook bodies keep their rows with the personal values erased; undeliverable-address rows of the
  customer's addresses are deleted unless another customer still uses the address.
- Retention: ``NOTIFICATIONS_MESSAGE_BODY_RETENTION_DAYS`` and ``WEBHOOK_PAYLOAD_RETENTION_DAYS`` (0 keeps
  them forever); a daily task empties older bodies of messages and deliveries that are finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from customers.models import Contact, Customer
from customers.privacy import ERASED, Erasure, rows_of
from notifications.models import (
    Audience,
    Banner,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    ReasonCode,
    StaffTask,
    SuppressedAddress,
    WebhookDelivery,
)
from notifications.models.outbox import FINAL_NOTIFICATION_STATUSES

PURGE_CHUNK = 5000
FINISHED_DELIVERY_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


def _deliveries_about(external_id: str) -> QuerySet[WebhookDelivery]:
    """Outgoing webhook bodies that name the customer (``"customer": "<external id>"``, as every event
    about a customer does)."""
    quoted = json.dumps(external_id)
    return WebhookDelivery.objects.filter(
        Q(body__contains=f'"customer":{quoted}') | Q(body__contains=f'"customer": {quoted}')
    )


def notifications_erase_customer(*, erasure: Erasure) -> dict[str, int]:
    """Anonymise this app's rows about one customer; returns rows changed per table."""
    messages = Notification.objects.filter(customer_id=erasure.customer_id)
    messages.filter(status=NotificationStatus.QUEUED).update(
        status=NotificationStatus.SUPPRESSED,
        reason_code=ReasonCode.CANCELLED,
        status_reason="The customer's personal data was erased.",
    )
    changed = 0
    for row in messages.values("pk", "audience", "recipient", "status_reason").iterator(chunk_size=1000):
        # Unique per (case, step, channel, recipient): a customer's address becomes a placeholder of its
        # own; staff recipients are staff, and stay.
        recipient = (
            f"erased-{row['pk']}@erased.invalid" if row["audience"] == Audience.CUSTOMER else row["recipient"]
        )
        changed += Notification.objects.filter(pk=row["pk"]).update(
            recipient=recipient,
            recipient_name="",
            subject=ERASED,
            body_text="",
            body_html="",
            status_reason=erasure.scrub_text(row["status_reason"]),
        )
    # Contacts are gone and the customer's email is empty by now: an address still found belongs to
    # someone else, whose undeliverable mark must stay.
    addresses = [
        email
        for email in erasure.emails
        if not Contact.objects.filter(email__iexact=email).exists()
        and not Customer.objects.filter(email__iexact=email).exists()
    ]
    return {
        "notifications.notification": changed,
        "notifications.suppressedaddress": SuppressedAddress.objects.filter(email__in=addresses).delete()[0],
        "notifications.banner": erasure.scrub_rows(
            Banner.objects.filter(customer_id=erasure.customer_id), ["message", "cta_label"]
        ),
        "notifications.stafftask": erasure.scrub_rows(
            StaffTask.objects.filter(customer_id=erasure.customer_id), ["title", "details"]
        ),
        "notifications.webhookdelivery": erasure.scrub_rows(
            _deliveries_about(erasure.external_id), ["body", "last_error"]
        ),
    }


def notifications_customer_data(*, customer: Customer) -> dict[str, list[dict[str, Any]]]:
    emails = {customer.email.lower(), *(e.lower() for e in customer.contacts.values_list("email", flat=True))}
    return {
        "notifications": rows_of(
            Notification.objects.filter(customer=customer).order_by("pk"), exclude=("claim_token", "batch")
        ),
        "banners": rows_of(Banner.objects.filter(customer=customer).order_by("pk")),
        "staff_tasks": rows_of(StaffTask.objects.filter(customer=customer).order_by("pk")),
        "undeliverable_addresses": rows_of(SuppressedAddress.objects.filter(email__in=emails - {""})),
        "webhook_deliveries": rows_of(
            _deliveries_about(customer.external_id).order_by("pk"), exclude=("claim_token", "batch")
        ),
    }


# --- Retention --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeCounts:
    message_bodies: int = 0
    webhook_bodies: int = 0


def _empty_in_chunks(queryset: QuerySet[Any], **changes: Any) -> int:
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:PURGE_CHUNK])
        if not ids:
            return total
        total += queryset.model.objects.filter(pk__in=ids).update(**changes)


def notifications_purge_expired(*, now: datetime | None = None) -> PurgeCounts:
    """Empty the bodies of finished messages and webhook deliveries older than their retention."""
    now = now or timezone.now()
    messages = webhooks = 0
    message_days: int = settings.NOTIFICATIONS_MESSAGE_BODY_RETENTION_DAYS
    if message_days > 0:
        messages = _empty_in_chunks(
            Notification.objects.filter(
                created_at__lt=now - timedelta(days=message_days),
                status__in=list(FINAL_NOTIFICATION_STATUSES),
            ).exclude(body_text="", body_html=""),
            body_text="",
            body_html="",
        )
    webhook_days: int = settings.WEBHOOK_PAYLOAD_RETENTION_DAYS
    if webhook_days > 0:
        webhooks = _empty_in_chunks(
            WebhookDelivery.objects.filter(
                created_at__lt=now - timedelta(days=webhook_days), status__in=FINISHED_DELIVERY_STATUSES
            ).exclude(body=""),
            body="",
        )
    return PurgeCounts(message_bodies=messages, webhook_bodies=webhooks)
