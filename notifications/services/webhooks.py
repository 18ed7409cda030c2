"""Outgoing webhooks: signed, idempotent per (endpoint, event id), retried for up to three days.

Every delivery is a POST of a JSON body ``{"id", "type", "created", "data"}`` with these headers:

- ``Dunning-Event-Id``: the stable event id (the same for every attempt and replay: deduplicate on it);
- ``Dunning-Event-Type``;
- ``Dunning-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

Retries after a failed attempt: 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h, 24 h…, never beyond three
days after the delivery was created; the last retry happens at that limit. An endpoint that has failed
continuously for ``WEBHOOKS_DISABLE_AFTER_HOURS`` is disabled, its pending deliveries are marked failed
(staff can replay them), and staff are told by a staff task and an email.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from customers.actors import Actor
from customers.services import audit_record
from notifications import conf, netguard
from notifications.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

EVENT_TYPES: dict[str, str] = {
    "case.opened": "A dunning case opened for a failed invoice.",
    "payment.retry_failed": "A retry of the payment failed.",
    "payment.recovered": "The invoice was paid; the case is recovered.",
    "case.exhausted": "Every step ran without recovering the payment.",
    "case.handed_off": "The case was handed to a person or a collection agency.",
    "customer.entitlement_changed": "Degrade, suspend or restore the customer's access.",
    "notification.sent": "An email to the customer went out.",
    "case.step": "A policy's webhook step ran; the payload's step names the milestone (e.g. grace_period_ended).",
}
TEST_EVENT_TYPE = "webhook.test"

RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
)
RETRY_WINDOW = timedelta(days=3)
DELIVERY_CHUNK = 50
SIGNATURE_HEADER = "Dunning-Signature"
USER_AGENT = "dunning-backoffice-webhooks/1"


@dataclass(frozen=True)
class WebhookEvent:
    event_type: str
    event_id: str
    payload: Mapping[str, object]
    occurred_at: datetime


def generate_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={sign(secret=secret, timestamp=timestamp, body=body)}"


def event_body(event: WebhookEvent) -> str:
    return json.dumps(
        {
            "id": event.event_id,
            "type": event.event_type,
            "created": event.occurred_at.isoformat(),
            "data": dict(event.payload),
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
        sort_keys=True,
    )


def next_attempt_at(*, attempts: int, give_up_at: datetime, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failures, or None once the retry window is over."""
    if now >= give_up_at:
        return None
    delay = RETRY_SCHEDULE[min(max(attempts, 1), len(RETRY_SCHEDULE)) - 1]
    return min(now + delay, give_up_at)


def webhooks_emit(*, events: Sequence[WebhookEvent]) -> int:
    """Create a delivery per event and subscribed, enabled endpoint; send them after commit.

    Idempotent: an event id already delivered (or pending) for an endpoint is not created again.
    Constant number of statements. Returns the number of deliveries created.
    """
    if not events:
        return 0
    endpoints = list(WebhookEndpoint.objects.filter(enabled=True))
    if not endpoints:
        return 0
    now = timezone.now()
    batch = uuid.uuid4()
    rows = []
    for event in events:
        body = event_body(event)
        for endpoint in endpoints:
            if endpoint.subscribes_to(event.event_type):
                rows.append(
                    WebhookDelivery(
                        endpoint=endpoint,
                        event_id=event.event_id[:200],
                        event_type=event.event_type,
                        body=body,
                        occurred_at=event.occurred_at,
                        next_attempt_at=now,
                        give_up_at=now + RETRY_WINDOW,
                        batch=batch,
                        created_at=now,
                    )
                )
    if not rows:
        return 0
    # Part of the caller's transaction (no savepoint: the dunning tick counts its statements).
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    created = list(WebhookDelivery.objects.filter(batch=batch).values_list("pk", flat=True))
    schedule_delivery(created)
    return len(created)


def schedule_delivery(delivery_ids: Sequence[int]) -> None:
    if not delivery_ids:
        return
    from django_q.tasks import async_task

    ids = list(delivery_ids)

    def enqueue() -> None:
        for start in range(0, len(ids), DELIVERY_CHUNK):
            async_task("notifications.tasks.deliver_webhooks", ids[start : start + DELIVERY_CHUNK])

    transaction.on_commit(enqueue)


@dataclass
class DeliveryResult:
    claimed: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0


def webhook_deliveries_attempt(
    *, delivery_ids: Sequence[int] | None = None, now: datetime | None = None, limit: int = 100
) -> DeliveryResult:
    """Attempt pending, due deliveries (the given ids, or the oldest due ones) of enabled endpoints."""
    now = now or timezone.now()
    token = uuid.uuid4()
    due = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=now, endpoint__enabled=True
    )
    if delivery_ids is not None:
        candidates = list(due.filter(pk__in=list(delivery_ids)).values_list("pk", flat=True))
    else:
        candidates = list(due.order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])
    result = DeliveryResult()
    if not candidates:
        return result
    # Conditional UPDATE: a second worker claiming the same rows gets none of them.
    WebhookDelivery.objects.filter(pk__in=candidates, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.DELIVERING, claim_token=token
    )
    deliveries = list(
        WebhookDelivery.objects.filter(claim_token=token, status=DeliveryStatus.DELIVERING)
        .select_related("endpoint")
        .order_by("id")
    )
    result.claimed = len(deliveries)
    for delivery in deliveries:
        outcome = _attempt(delivery, now=now, replay=False)
        setattr(result, outcome, getattr(result, outcome) + 1)
    return result


def _attempt(delivery: WebhookDelivery, *, now: datetime, replay: bool) -> str:
    endpoint = delivery.endpoint
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Dunning-Event-Id": delivery.event_id,
        "Dunning-Event-Type": delivery.event_type,
        SIGNATURE_HEADER: signature_header(secret=endpoint.secret, body=body),
    }
    response = netguard.post(endpoint.url, body=body, headers=headers)
    attempts = delivery.attempts + 1
    error = response.error or ("" if response.ok else f"HTTP {response.status}")
    WebhookAttempt.objects.create(
        delivery=delivery,
        attempted_at=timezone.now(),
        status_code=response.status,
        error=error,
        response_excerpt=response.excerpt[:500],
        duration_ms=response.duration_ms,
        replay=replay,
    )
    finished = WebhookDelivery.objects.filter(pk=delivery.pk, claim_token=delivery.claim_token)
    if response.ok:
        finished.update(
            status=DeliveryStatus.SUCCEEDED,
            attempts=attempts,
            last_status_code=response.status,
            last_error="",
            delivered_at=timezone.now(),
            next_attempt_at=None,
            claim_token=None,
        )
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
        return "succeeded"
    retry_at = next_attempt_at(attempts=attempts, give_up_at=delivery.give_up_at, now=now)
    finished.update(
        status=DeliveryStatus.PENDING if retry_at else DeliveryStatus.FAILED,
        attempts=attempts,
        last_status_code=response.status,
        last_error=error[:1000],
        next_attempt_at=retry_at,
        claim_token=None,
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    _disable_if_failing_too_long(endpoint.pk, now=now)
    return "retrying" if retry_at else "failed"


def _disable_if_failing_too_long(endpoint_id: int, *, now: datetime) -> bool:
    limit = conf.webhooks_disable_after()
    reason = f"Every delivery failed for more than {limit.total_seconds() / 3600:.0f} hours."
    with transaction.atomic():
        # Conditional: of two workers noticing at once, one disables and tells staff.
        disabled = WebhookEndpoint.objects.filter(
            pk=endpoint_id, enabled=True, failing_since__lte=now - limit
        ).update(enabled=False, disabled_at=now, disabled_reason=reason)
        if not disabled:
            return False
        WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED, last_error="The endpoint was disabled.", next_attempt_at=None
        )
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        from notifications.services.staff import staff_task_create

        staff_task_create(
            customer_id=None,
            case_ref=None,
            title=f"Webhook endpoint disabled: {endpoint.url}",
            details=(
                f"{reason} Deliveries to {endpoint.url} stopped at {now:%Y-%m-%d %H:%M} UTC. Fix the "
                "receiver, enable the endpoint again in the admin, then replay the failed deliveries."
            ),
        )
    return True


def webhook_delivery_replay(*, delivery: WebhookDelivery, actor: Actor) -> bool:
    """Send a delivery again (same event id and body), now, with a fresh three-day retry window.

    Refused (False) while the endpoint is disabled or the delivery is being attempted, and once its body
    was purged. Audited either way: a refused replay names who asked and why nothing was sent.
    """
    now = timezone.now()
    details = {"delivery_id": delivery.pk, "event_id": delivery.event_id, "endpoint_id": delivery.endpoint_id}
    with transaction.atomic():
        updated = (
            WebhookDelivery.objects.filter(
                pk=delivery.pk,
                endpoint__enabled=True,
                status__in=[DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED, DeliveryStatus.PENDING],
            )
            .exclude(body="")  # purged after WEBHOOK_PAYLOAD_RETENTION_DAYS: nothing left to send
            .update(
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                give_up_at=now + RETRY_WINDOW,
                claim_token=None,
            )
        )
        if not updated:
            enabled = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, enabled=True).exists()
            purged = not WebhookDelivery.objects.filter(pk=delivery.pk).exclude(body="").exists()
            if not enabled:
                reason = "the endpoint is disabled"
            elif purged:
                reason = "its body was purged (WEBHOOK_PAYLOAD_RETENTION_DAYS)"
            else:
                reason = "being delivered right now"
            audit_record(
                actor=actor, action="webhook_delivery.replay_refused", reason=reason, details=details
            )
            return False
        audit_record(actor=actor, action="webhook_delivery.replayed", details=details)
        schedule_delivery([delivery.pk])
    return True


def webhook_endpoint_send_test(*, endpoint: WebhookEndpoint, actor: Actor) -> WebhookDelivery:
    """Deliver a ``webhook.test`` event to this endpoint right now and return the delivery with its outcome."""
    now = timezone.now()
    event = WebhookEvent(
        event_type=TEST_EVENT_TYPE,
        event_id=f"test:{uuid.uuid4()}",
        payload={"message": "A test event from the dunning back office.", "sent_by": actor.label},
        occurred_at=now,
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=event.event_id,
        event_type=event.event_type,
        body=event_body(event),
        occurred_at=now,
        status=DeliveryStatus.DELIVERING,
        claim_token=uuid.uuid4(),
        # A test is attempted once, here; it is not retried on its own.
        give_up_at=now,
        next_attempt_at=None,
    )
    delivery.endpoint = endpoint
    _attempt(delivery, now=now, replay=False)
    delivery.refresh_from_db()
    return delivery


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, actor: Actor) -> bool:
    updated = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=False).update(
        enabled=True, disabled_at=None, disabled_reason="", failing_since=None
    )
    if updated:
        audit_record(actor=actor, action="webhook_endpoint.enabled", details={"endpoint_id": endpoint.pk})
    return bool(updated)
