"""Workers racing for the same rows (PostgreSQL): each email and each webhook goes out exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from django.db import connections

from notifications.models import DeliveryStatus, Notification, NotificationStatus, WebhookDelivery
from notifications.services import notifications_dispatch, webhook_deliveries_attempt, webhooks_emit
from notifications.services.webhooks import WebhookEvent
from tests.factories import NotificationFactory, WebhookEndpointFactory
from tests.support.http_sink import HttpSink
from tests.support.smtp_sink import SmtpSink

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
WORKERS = 6


def _race(work: Callable[[], object]) -> None:
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


@pytest.fixture
def smtp(settings) -> Iterator[SmtpSink]:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_QUIET_HOURS_START = settings.NOTIFICATIONS_QUIET_HOURS_END = 0
    sink = SmtpSink().start()
    for name, value in sink.settings().items():
        setattr(settings, name, value)
    yield sink
    sink.stop()


def test_parallel_dispatchers_send_each_email_once(smtp) -> None:  # type: ignore[no-untyped-def]
    rows = [NotificationFactory(recipient=f"r{i}@example.com") for i in range(20)]
    ids = [r.pk for r in rows]
    _race(lambda: notifications_dispatch(notification_ids=ids))
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == sorted(r.recipient for r in rows)
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert set(Notification.objects.values_list("attempts", flat=True)) == {1}


def test_parallel_due_sweeps_send_each_email_once(smtp) -> None:  # type: ignore[no-untyped-def]
    for i in range(20):
        NotificationFactory(recipient=f"s{i}@example.com")
    _race(lambda: notifications_dispatch(notification_ids=None))
    assert len(smtp.messages) == 20


def test_parallel_webhook_workers_deliver_each_event_once(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_HTTP_HOSTS = ["127.0.0.1"]
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    sink = HttpSink().start()
    try:
        WebhookEndpointFactory(url=sink.url(), event_types=["payment.recovered"])
        from django.utils import timezone

        webhooks_emit(
            events=[
                WebhookEvent("payment.recovered", f"evt_{i}", {"i": i}, timezone.now()) for i in range(10)
            ]
        )
        _race(lambda: webhook_deliveries_attempt())
    finally:
        sink.stop()
    assert sorted(r.headers["Dunning-Event-Id"] for r in sink.received) == sorted(
        f"evt_{i}" for i in range(10)
    )
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
