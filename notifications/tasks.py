"""django-q2 entry points. Three-line wrappers with stable dotted paths: the logic is in services."""

from __future__ import annotations

from notifications.services.dispatch import notifications_dispatch, notifications_dispatch_due
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
