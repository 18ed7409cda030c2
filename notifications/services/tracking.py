"""Provider tracking events (delivered, opened, clicked, bounced, complained) applied to the outbox.

anymail's tracking webhook views (mounted under ``/anymail/``, protected by ``ANYMAIL["WEBHOOK_SECRET"]``
basic auth) send the ``anymail.signals.tracking`` signal; ``notifications.apps`` connects it to
``notification_record_tracking``. A hard bounce or a complaint adds the address to the undeliverable
list, whether or not the event maps to one of our rows, and later messages to it are skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime

from anymail.signals import AnymailTrackingEvent, EventType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications.models import Notification, NotificationStatus, ReasonCode, SuppressionReason
from notifications.services.outbox import suppressed_address_add

logger = logging.getLogger(__name__)

# Bounce types some providers report as "bounced" although the mailbox may work again later.
SOFT_BOUNCE_TYPES = frozenset({"SoftBounce", "Transient", "DnsError"})


def _find_notification(event: AnymailTrackingEvent) -> Notification | None:
    metadata = event.metadata or {}
    raw_id = str(metadata.get("notification_id", "")).strip()
    if raw_id.isdigit():
        found = Notification.objects.filter(pk=int(raw_id)).first()
        if found is not None:
            return found
    if event.message_id:
        message_id = str(event.message_id)
        return (
            Notification.objects.filter(Q(esp_message_id=message_id) | Q(message_id=message_id))
            .order_by("-id")
            .first()
        )
    return None


def _is_soft_bounce(event: AnymailTrackingEvent) -> bool:
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    return str(esp_event.get("Type", "")) in SOFT_BOUNCE_TYPES


def notification_record_tracking(*, event: AnymailTrackingEvent, esp_name: str) -> Notification | None:
    """Apply one tracking event. Idempotent: a replayed event changes nothing more."""
    moment: datetime = event.timestamp or timezone.now()
    recipient = (event.recipient or "").strip().lower()
    with transaction.atomic():
        notification = _find_notification(event)
        if notification is not None and not recipient:
            recipient = notification.recipient
        event_type = event.event_type
        undeliverable_reason = ""
        if event_type == EventType.BOUNCED and not _is_soft_bounce(event):
            undeliverable_reason = SuppressionReason.HARD_BOUNCE
        elif event_type == EventType.REJECTED and event.reject_reason in ("invalid", "bounced"):
            undeliverable_reason = SuppressionReason.INVALID
        elif event_type == EventType.COMPLAINED:
            undeliverable_reason = SuppressionReason.COMPLAINT
        if notification is not None:
            _apply(notification, event, moment, hard=bool(undeliverable_reason))
        else:
            logger.info("%s %s event for an unknown message %s", esp_name, event_type, event.message_id)
        if undeliverable_reason and recipient:
            details = " ".join(filter(None, [esp_name, event.description or "", event.mta_response or ""]))
            suppressed_address_add(
                email=recipient,
                reason=undeliverable_reason,
                details=details,
                notification_id=notification.pk if notification is not None else None,
            )
    return notification


def _apply(notification: Notification, event: AnymailTrackingEvent, moment: datetime, *, hard: bool) -> None:
    rows = Notification.objects.filter(pk=notification.pk)
    event_type = event.event_type
    if event_type == EventType.DELIVERED:
        rows.filter(delivered_at__isnull=True).update(delivered_at=moment)
    elif event_type == EventType.OPENED:
        rows.filter(opened_at__isnull=True).update(opened_at=moment)
    elif event_type == EventType.CLICKED:
        rows.filter(clicked_at__isnull=True).update(clicked_at=moment)
        # A click implies an open, even when the open pixel was blocked.
        rows.filter(opened_at__isnull=True).update(opened_at=moment)
    elif event_type == EventType.BOUNCED or (event_type == EventType.REJECTED and hard):
        detail = (event.mta_response or event.description or "").strip()
        code = ReasonCode.HARD_BOUNCE if hard else ReasonCode.SOFT_BOUNCE
        changes: dict[str, object] = {
            "reason_code": code,
            "status_reason": f"{event.event_type}: {detail}"[:1000],
        }
        if hard:
            changes["status"] = NotificationStatus.BOUNCED
        rows.filter(bounced_at__isnull=True).update(bounced_at=moment, **changes)
    elif event_type == EventType.COMPLAINED:
        rows.filter(complained_at__isnull=True).update(
            complained_at=moment,
            reason_code=ReasonCode.COMPLAINT,
            status_reason="The recipient reported spam.",
        )
    notification.refresh_from_db()
