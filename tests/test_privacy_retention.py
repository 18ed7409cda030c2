"""Retention: message bodies and webhook payloads older than their settings are emptied by the daily tasks
that ``sync_schedules`` installs; the rows, their statuses and ids stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from customers.actors import Actor
from dunning.models import StripeEvent, StripeEventStatus
from dunning.tasks import purge_expired_stripe_payloads
from notifications.models import DeliveryStatus, NotificationStatus, WebhookDelivery
from notifications.services import notifications_requeue, webhook_delivery_replay
from notifications.tasks import purge_expired_bodies
from tests.factories import NotificationFactory, WebhookEndpointFactory
from tests.support.stripe_account import make_event

pytestmark = pytest.mark.django_db
STAFF = Actor.system("retention test")


def _days_ago(days: int):  # type: ignore[no-untyped-def]
    return timezone.now() - timedelta(days=days)


def _delivery(days: int, status: str) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=WebhookEndpointFactory(),
        event_id=f"evt-{days}-{status}",
        event_type="case.opened",
        body='{"data":{"customer":"acme"}}',
        occurred_at=_days_ago(days),
        give_up_at=_days_ago(days - 3),
        status=status,
        created_at=_days_ago(days),
    )


def test_old_finished_message_bodies_are_emptied_and_the_rows_kept(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_MESSAGE_BODY_RETENTION_DAYS = 30
    old_sent = NotificationFactory(status=NotificationStatus.SENT, created_at=_days_ago(31))
    old_failed = NotificationFactory(status=NotificationStatus.FAILED, created_at=_days_ago(40))
    old_queued = NotificationFactory(status=NotificationStatus.QUEUED, created_at=_days_ago(40))
    recent = NotificationFactory(status=NotificationStatus.SENT, created_at=_days_ago(29))
    assert purge_expired_bodies() == 2
    for row in (old_sent, old_failed, old_queued, recent):
        row.refresh_from_db()
    assert (old_sent.body_text, old_sent.body_html, old_sent.status) == ("", "", NotificationStatus.SENT)
    assert old_sent.subject and old_sent.recipient  # what was sent to whom, and when, stays
    assert old_failed.body_text == ""
    assert old_queued.body_text and recent.body_text  # still to send, or still within retention
    # Nothing left to send: requeueing the purged failure is refused.
    assert notifications_requeue(notification_ids=[old_failed.pk], actor=STAFF) == 0
    assert purge_expired_bodies() == 0  # idempotent


def test_old_finished_webhook_bodies_are_emptied_and_cannot_be_replayed(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_PAYLOAD_RETENTION_DAYS = 10
    old = _delivery(11, DeliveryStatus.SUCCEEDED)
    pending = _delivery(11, DeliveryStatus.PENDING)
    recent = _delivery(9, DeliveryStatus.FAILED)
    assert purge_expired_bodies() == 1
    old.refresh_from_db()
    pending.refresh_from_db()
    recent.refresh_from_db()
    assert old.body == "" and pending.body and recent.body
    assert webhook_delivery_replay(delivery=old, actor=STAFF) is False
    assert webhook_delivery_replay(delivery=recent, actor=STAFF) is True


def test_old_stripe_payloads_are_cut_down_to_their_ids(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_PAYLOAD_RETENTION_DAYS = 10
    event = make_event(
        "customer.updated", {"id": "cus_9", "object": "customer", "name": "Ada", "email": "a@x.example"}
    )
    old = StripeEvent.objects.create(
        event_id=event["id"],
        type=event["type"],
        payload=event,
        status=StripeEventStatus.PROCESSED,
        received_at=_days_ago(11),
    )
    waiting = StripeEvent.objects.create(
        event_id="evt_waiting", type="customer.updated", payload=event, received_at=_days_ago(11)
    )
    assert purge_expired_stripe_payloads() == 1
    old.refresh_from_db()
    waiting.refresh_from_db()
    assert old.payload["data"] == {"object": {"id": "cus_9", "object": "customer"}}
    assert (old.payload["id"], old.payload["type"]) == (event["id"], "customer.updated")
    assert "purged_at" in old.payload and "Ada" not in str(old.payload)
    assert waiting.payload["data"]["object"]["name"] == "Ada"  # not processed yet: kept whole
    assert purge_expired_stripe_payloads() == 0


def test_zero_keeps_everything(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_MESSAGE_BODY_RETENTION_DAYS = 0
    settings.WEBHOOK_PAYLOAD_RETENTION_DAYS = 0
    NotificationFactory(status=NotificationStatus.SENT, created_at=_days_ago(5000))
    _delivery(5000, DeliveryStatus.SUCCEEDED)
    assert purge_expired_bodies() == 0
    assert purge_expired_stripe_payloads() == 0


def test_sync_schedules_installs_the_daily_purges(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAYMENT_GATEWAY = "stripe"  # the Stripe inbox's purge comes with the other Stripe schedules
    call_command("sync_schedules", stdout=StringIO())
    notifications = Schedule.objects.get(name="notifications: purge expired message and webhook bodies")
    assert (notifications.func, notifications.minutes) == ("notifications.tasks.purge_expired_bodies", 1440)
    stripe = Schedule.objects.get(name="dunning: purge expired Stripe payloads")
    assert (stripe.func, stripe.schedule_type) == ("dunning.tasks.purge_expired_stripe_payloads", "D")
