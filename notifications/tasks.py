"""django-q2 entry points. Three-line wrappers with stable dotted paths: the logic is in services."""

from __future__ import annotations

from notifications.services.dispatch import notifications_dispatch, notifications_dispatch_due
from notifications.services.privacy import notifications_purge_expired
from notifications.services.webhooks import webhook_deliveries_attempt


def dispatch_notifications(notification_ids: list[int]) -> int:
    """Send these queued rows (enqueued after commit by ``notifications_enqueue``)."""
    return notifications_dispatch(notification_ids=notification_ids).sent


def dispatch_due_notifications() -> int:
    """Every minute: rows whose quiet hours or backoff are over; rows left behind by a dead worker."""
    return notifications_dispatch_due().sent


def deliver_webhooks(delivery_ids: list[int]) -> int:
    return webhook_deliveries_attempt(delivery_ids=delivery_ids).succeeded


def retry_due_webhooks() -> int:
    """Every minute: deliveries whose next attempt is due."""
    return webhook_deliveries_attempt(delivery_ids=None).succeeded


def purge_expired_bodies() -> int:
    """Daily: message and webhook bodies past their retention (NOTIFICATIONS_MESSAGE_BODY_RETENTION_DAYS,
    WEBHOOK_PAYLOAD_RETENTION_DAYS)."""
    counts = notifications_purge_expired()
    return counts.message_bodies + counts.webhook_bodies
