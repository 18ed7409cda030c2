"""Outgoing webhooks against a real local HTTP server: signed (verified with the README's snippet),
idempotent per event, retried on the documented schedule, disabled when failing for days, replayable;
and the SSRF guard."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from notifications.models import (
    DeliveryStatus,
    Notification,
    StaffTask,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from notifications.netguard import UnsafeURL, check_url
from notifications.services import WebhookEvent, webhook_deliveries_attempt, webhooks_emit
from tests.factories import WebhookEndpointFactory
from tests.support.http_sink import HttpSink

pytestmark = pytest.mark.django_db
README = Path(__file__).resolve().parent.parent / "README.md"


def documented_verifier() -> Any:
    """The Python verification snippet from README.md, executed as a reader would copy it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    [snippet] = [b for b in blocks if "def verify_dunning_signature" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    return namespace["verify_dunning_signature"]


@pytest.fixture
def sink(settings) -> Iterator[HttpSink]:  # type: ignore[no-untyped-def]
    # The receiver runs on loopback over http: allowed here through the development settings.
    settings.WEBHOOKS_ALLOW_HTTP_HOSTS = ["127.0.0.1"]
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    server = HttpSink().start()
    yield server
    server.stop()


def _event(event_id: str = "evt_case_opened_42", event_type: str = "case.opened") -> WebhookEvent:
    return WebhookEvent(
        event_type=event_type,
        event_id=event_id,
        payload={"case": 42, "customer": "acme-42", "amount_minor": 4900, "currency": "EUR"},
        occurred_at=datetime(2025, 6, 10, 8, 0, tzinfo=UTC),
    )


def test_a_delivery_is_signed_and_verifies_with_the_documented_snippet(
    sink, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    endpoint = WebhookEndpointFactory(url=sink.url("/hooks/dunning"), secret="whsec_shared")
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks_emit(events=[_event()]) == 1
    [received] = sink.received
    assert received.path == "/hooks/dunning"
    assert received.headers["Dunning-Event-Id"] == "evt_case_opened_42"
    assert received.headers["Dunning-Event-Type"] == "case.opened"
    assert received.headers["Content-Type"] == "application/json"
    verify = documented_verifier()
    assert verify(received.body, received.headers["Dunning-Signature"], "whsec_shared")
    assert not verify(received.body, received.headers["Dunning-Signature"], "whsec_other")
    assert not verify(received.body + b" ", received.headers["Dunning-Signature"], "whsec_shared")
    body = json.loads(received.body)
    assert body == {
        "id": "evt_case_opened_42",
        "type": "case.opened",
        "created": "2025-06-10T08:00:00+00:00",
        "data": {"amount_minor": 4900, "case": 42, "currency": "EUR", "customer": "acme-42"},
    }
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert WebhookAttempt.objects.filter(delivery=delivery, status_code=200).count() == 1


def test_an_old_signature_is_refused_by_the_snippet() -> None:
    from notifications.services.webhooks import signature_header

    body = b'{"id":"x"}'
    old = signature_header(secret="s", body=body, timestamp=int(datetime.now(UTC).timestamp()) - 3600)
    assert not documented_verifier()(body, old, "s")


def test_the_same_event_is_never_delivered_twice_to_an_endpoint(
    sink, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    WebhookEndpointFactory(url=sink.url())
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks_emit(events=[_event()]) == 1
        assert webhooks_emit(events=[_event(), _event()]) == 0
    assert len(sink.received) == 1


def test_only_subscribed_enabled_endpoints_get_the_event(sink) -> None:  # type: ignore[no-untyped-def]
    subscribed = WebhookEndpointFactory(url=sink.url("/a"), event_types=["case.opened"])
    WebhookEndpointFactory(url=sink.url("/b"), event_types=["payment.recovered"])
    WebhookEndpointFactory(url=sink.url("/c"), event_types=["case.opened"], enabled=False)
    assert webhooks_emit(events=[_event()]) == 1
    assert list(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == [subscribed.pk]


def test_emitting_many_events_is_a_constant_number_of_statements() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    WebhookEndpointFactory(event_types=["payment.retry_failed"])
    WebhookEndpointFactory(event_types=["payment.retry_failed"])
    with CaptureQueriesContext(connection) as few:
        webhooks_emit(events=[_event(f"a{i}", "payment.retry_failed") for i in range(3)])
    with CaptureQueriesContext(connection) as many:
        assert webhooks_emit(events=[_event(f"b{i}", "payment.retry_failed") for i in range(30)]) == 60
    assert len(few) == len(many) == 3  # endpoints, insert, read-back


def test_failures_follow_the_retry_schedule_for_three_days(sink, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_DISABLE_AFTER_HOURS = 24 * 30  # disabling has its own test
    sink.answers = [(500, {}, b"oops")]
    WebhookEndpointFactory(url=sink.url())
    webhooks_emit(events=[_event()])
    delivery = WebhookDelivery.objects.get()
    created = delivery.created_at
    now = created
    gaps = []
    while True:
        webhook_deliveries_attempt(now=now)
        delivery.refresh_from_db()
        if delivery.status != DeliveryStatus.PENDING:
            break
        gaps.append(delivery.next_attempt_at - now)
        now = delivery.next_attempt_at
    minutes, hours = timedelta(minutes=1), timedelta(hours=1)
    assert gaps[:8] == [
        1 * minutes,
        5 * minutes,
        30 * minutes,
        2 * hours,
        6 * hours,
        12 * hours,
        24 * hours,
        24 * hours,
    ]
    assert now == created + timedelta(days=3)  # the last try is exactly three days after the event
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == len(gaps) + 1 == 10
    assert delivery.last_status_code == 500
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 10
    assert len(sink.received) == 10


def test_a_delivery_that_is_not_due_is_not_attempted(sink) -> None:  # type: ignore[no-untyped-def]
    sink.answers = [(503, {}, b"")]
    WebhookEndpointFactory(url=sink.url())
    webhooks_emit(events=[_event()])
    delivery = WebhookDelivery.objects.get()
    webhook_deliveries_attempt(now=delivery.created_at)
    assert webhook_deliveries_attempt(now=delivery.created_at + timedelta(seconds=59)).claimed == 0
    assert len(sink.received) == 1


def test_redirects_are_not_followed(sink) -> None:  # type: ignore[no-untyped-def]
    sink.answers = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")]
    WebhookEndpointFactory(url=sink.url())
    webhooks_emit(events=[_event()])
    webhook_deliveries_attempt()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code == 302
    assert delivery.last_error == "HTTP 302"
    assert len(sink.received) == 1


def test_a_success_after_failures_clears_the_failing_state(sink) -> None:  # type: ignore[no-untyped-def]
    sink.answers = [(500, {}, b""), (204, {}, b"")]
    endpoint = WebhookEndpointFactory(url=sink.url())
    webhooks_emit(events=[_event()])
    webhook_deliveries_attempt()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    webhook_deliveries_attempt(now=datetime.now(UTC) + timedelta(minutes=2))
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_an_endpoint_failing_for_days_is_disabled_and_staff_are_told(
    sink, settings, django_user_model
) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFICATIONS_STAFF_GROUP = "Billing ops"
    ops = django_user_model.objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    ops.groups.add(Group.objects.create(name="Billing ops"))
    sink.answers = [(500, {}, b"")]
    endpoint = WebhookEndpointFactory(url=sink.url())
    webhooks_emit(events=[_event("e1"), _event("e2")])
    now = datetime.now(UTC)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=now - timedelta(hours=73))
    webhook_deliveries_attempt(now=now, limit=1)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "72 hours" in endpoint.disabled_reason
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    task = StaffTask.objects.get()
    assert endpoint.url in task.title
    staff_mail = Notification.objects.get(step_ref=f"staff_task:{task.pk}")
    assert staff_mail.recipient == "ops@example.com"
    assert endpoint.url in staff_mail.subject
    # Disabled: no new deliveries, nothing more attempted.
    assert webhooks_emit(events=[_event("e3")]) == 0
    assert webhook_deliveries_attempt(now=now + timedelta(days=1)).claimed == 0


def test_staff_can_replay_a_delivery_from_the_admin(
    sink, admin_client, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    sink.answers = [(500, {}, b""), (200, {}, b"")]
    WebhookEndpointFactory(url=sink.url(), secret="whsec_x")
    webhooks_emit(events=[_event()])
    webhook_deliveries_attempt()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:notifications_webhookdelivery_changelist"),
            {"action": "replay", "_selected_action": [delivery.pk]},
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [r.headers["Dunning-Event-Id"] for r in sink.received] == ["evt_case_opened_42"] * 2
    assert sink.received[0].body == sink.received[1].body
    assert documented_verifier()(
        sink.received[1].body, sink.received[1].headers["Dunning-Signature"], "whsec_x"
    )


def test_staff_can_send_a_test_event(sink, admin_client) -> None:  # type: ignore[no-untyped-def]
    endpoint = WebhookEndpointFactory(url=sink.url(), event_types=["case.opened"])
    response = admin_client.post(
        reverse("admin:notifications_webhookendpoint_changelist"),
        {"action": "send_test_event", "_selected_action": [endpoint.pk]},
        follow=True,
    )
    assert "delivered" in response.content.decode()
    [received] = sink.received
    assert received.headers["Dunning-Event-Type"] == "webhook.test"


def test_delivery_list_and_detail_pages_render(sink, admin_client) -> None:  # type: ignore[no-untyped-def]
    WebhookEndpointFactory(url=sink.url())
    webhooks_emit(events=[_event()])
    webhook_deliveries_attempt()
    delivery = WebhookDelivery.objects.get()
    assert admin_client.get(reverse("admin:notifications_webhookdelivery_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:notifications_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200
    assert "Attempts (latest 20)" in page.content.decode()


# --- the SSRF guard --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.1.2.3:8443/hook",
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",
    ],
)
def test_the_guard_refuses_private_loopback_and_link_local_addresses(url: str) -> None:
    with pytest.raises(UnsafeURL, match="private, loopback, link-local or reserved"):
        check_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "Plain http"),
        ("ftp://hooks.example.com/x", "Only https"),
        ("https://user:pass@93.184.216.34/x", "Credentials"),
        ("https:///nohost", "no host"),
    ],
)
def test_the_guard_refuses_other_unsafe_urls(url: str, message: str) -> None:
    with pytest.raises(UnsafeURL, match=message):
        check_url(url)


def test_a_public_address_passes_and_development_settings_open_loopback(settings) -> None:  # type: ignore[no-untyped-def]
    assert check_url("https://93.184.216.34/hooks?x=1").path == "/hooks?x=1"
    settings.WEBHOOKS_ALLOW_HTTP_HOSTS = ["127.0.0.1"]
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.1:9000/")
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    assert check_url("http://127.0.0.1:9000/").addresses == ("127.0.0.1",)


def test_a_delivery_to_a_private_address_never_connects(settings) -> None:  # type: ignore[no-untyped-def]
    server = HttpSink().start()
    try:
        settings.WEBHOOKS_ALLOW_HTTP_HOSTS = ["127.0.0.1"]  # http allowed, but loopback is not
        WebhookEndpointFactory(url=server.url())
        webhooks_emit(events=[_event()])
        webhook_deliveries_attempt()
    finally:
        server.stop()
    assert server.received == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_error.startswith("Refused by the SSRF guard")
    assert delivery.status == DeliveryStatus.PENDING  # retried: the setting may be fixed


def test_the_admin_refuses_an_internal_url(admin_client) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(
        reverse("admin:notifications_webhookendpoint_add"),
        {"url": "https://169.254.169.254/", "description": "", "event_types": ["case.opened"], "secret": ""},
    )
    assert response.status_code == 200
    assert "link-local" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_generates_a_secret(admin_client) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(
        reverse("admin:notifications_webhookendpoint_add"),
        {
            "url": "https://93.184.216.34/hooks",
            "description": "",
            "event_types": ["case.opened"],
            "secret": "",
        },
    )
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) > 30
    assert endpoint.event_types == ["case.opened"]
