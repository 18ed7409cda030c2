"""Provider tracking webhooks (Postmark's payloads, through anymail's view with basic auth) update the
outbox, and a hard bounce or complaint makes the address undeliverable for later messages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from django.test import Client

from notifications.models import Notification, NotificationStatus, ReasonCode, SuppressedAddress
from notifications.services import MessageRequest, notifications_enqueue
from tests.factories import ContactFactory, CustomerFactory, NotificationFactory

pytestmark = pytest.mark.django_db
URL = "/anymail/postmark/tracking/"
SECRET = "postmark-hook:s3cret-webhook-pass"


@pytest.fixture(autouse=True)
def _webhook_secret(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    settings.ANYMAIL_PROVIDER = "postmark"


def _post(payload: dict, credentials: str = SECRET) -> int:
    auth = base64.b64encode(credentials.encode()).decode()
    response = Client().post(
        URL, data=json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=f"Basic {auth}"
    )
    return response.status_code


def _postmark_bounce(notification: Notification, **overrides: object) -> dict:
    """A Postmark bounce webhook as Postmark sends it (their documented fields), for a message we sent
    with anymail metadata."""
    payload = {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": notification.template_key,
        "MessageID": "9d6c8d9a-42b4-4d76-9ab5-6a0d5a1b3f21",
        "Metadata": {"notification_id": str(notification.pk)},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": notification.recipient,
        "From": "billing@example.com",
        "BouncedAt": "2025-06-10T14:28:10.2735393-04:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": notification.subject,
        "Content": "Return-Path: <>\r\nReceived: ...",
    }
    payload.update(overrides)
    return payload


def test_a_hard_bounce_marks_the_row_and_the_address_and_later_messages_skip_it() -> None:
    customer = CustomerFactory(time_zone="UTC")
    ContactFactory(customer=customer, email="gone@acme.example")
    ContactFactory(customer=customer, email="ok@acme.example")
    row = NotificationFactory(
        customer=customer, recipient="gone@acme.example", status=NotificationStatus.SENT
    )

    assert _post(_postmark_bounce(row)) == 200

    row.refresh_from_db()
    assert row.status == NotificationStatus.BOUNCED
    assert row.reason_code == ReasonCode.HARD_BOUNCE
    assert row.bounced_at == datetime(2025, 6, 10, 18, 28, 10, 273539, tzinfo=UTC)
    assert "550 5.1.1" in row.status_reason
    suppressed = SuppressedAddress.objects.get(email="gone@acme.example")
    assert suppressed.reason == "hard_bounce"
    assert suppressed.notification_id == row.pk

    later = notifications_enqueue(
        requests=[
            MessageRequest(customer_id=customer.pk, template_key="failure_2", case_ref=5, step_ref="v1:2")
        ],
        now=datetime(2025, 6, 12, 12, tzinfo=UTC),
    )
    by_address = {r.recipient: r for r in later}
    assert by_address["gone@acme.example"].status == NotificationStatus.SKIPPED
    assert by_address["gone@acme.example"].reason_code == ReasonCode.UNDELIVERABLE
    assert by_address["ok@acme.example"].status == NotificationStatus.QUEUED


def test_queued_messages_to_a_bounced_address_are_skipped_too() -> None:
    sent = NotificationFactory(recipient="gone@acme.example", status=NotificationStatus.SENT)
    queued = NotificationFactory(recipient="gone@acme.example", status=NotificationStatus.QUEUED)
    assert _post(_postmark_bounce(sent)) == 200
    queued.refresh_from_db()
    assert (queued.status, queued.reason_code) == ("skipped", "undeliverable")


def test_without_metadata_the_provider_message_id_finds_the_row() -> None:
    row = NotificationFactory(
        recipient="gone@acme.example",
        status=NotificationStatus.SENT,
        esp_message_id="9d6c8d9a-42b4-4d76-9ab5-6a0d5a1b3f21",
    )
    payload = _postmark_bounce(row)
    del payload["Metadata"]
    assert _post(payload) == 200
    row.refresh_from_db()
    assert row.status == NotificationStatus.BOUNCED


def test_wrong_or_missing_credentials_change_nothing() -> None:
    row = NotificationFactory(recipient="gone@acme.example", status=NotificationStatus.SENT)
    assert _post(_postmark_bounce(row), credentials="postmark-hook:wrong") == 400
    response = Client().post(URL, data=json.dumps(_postmark_bounce(row)), content_type="application/json")
    assert response.status_code == 400
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert not SuppressedAddress.objects.exists()


def test_a_soft_bounce_is_recorded_but_the_address_stays_deliverable() -> None:
    row = NotificationFactory(recipient="full@acme.example", status=NotificationStatus.SENT)
    assert _post(_postmark_bounce(row, Type="SoftBounce", TypeCode=4096, Name="Soft bounce")) == 200
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert row.reason_code == ReasonCode.SOFT_BOUNCE
    assert not SuppressedAddress.objects.exists()


def test_a_spam_complaint_makes_the_address_undeliverable() -> None:
    row = NotificationFactory(recipient="angry@acme.example", status=NotificationStatus.SENT)
    payload = _postmark_bounce(
        row, RecordType="SpamComplaint", Type="SpamComplaint", TypeCode=512, Name="Spam complaint"
    )
    assert _post(payload) == 200
    row.refresh_from_db()
    assert row.complained_at is not None
    assert SuppressedAddress.objects.get(email="angry@acme.example").reason == "complaint"


def test_delivered_opened_and_clicked_set_their_times_once() -> None:
    row = NotificationFactory(recipient="ada@acme.example", status=NotificationStatus.SENT)
    metadata = {"notification_id": str(row.pk)}
    delivery = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": "ada@acme.example",
        "Tag": "failure_1",
        "DeliveredAt": "2025-06-10T13:28:10.2735393-04:00",
        "Details": "Test delivery webhook details",
        "Metadata": metadata,
    }
    click = {
        "RecordType": "Click",
        "MessageStream": "outbound",
        "ClickLocation": "HTML",
        "Platform": "Desktop",
        "UserAgent": "Mozilla/5.0",
        "OriginalLink": "https://pay.example.com/p/tok/",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ReceivedAt": "2025-06-10T18:00:00Z",
        "Recipient": "ada@acme.example",
        "Metadata": metadata,
    }
    assert _post(delivery) == 200
    assert _post(click) == 200
    assert _post({**click, "ReceivedAt": "2025-06-11T09:00:00Z"}) == 200  # a second click changes nothing
    row.refresh_from_db()
    assert row.delivered_at == datetime(2025, 6, 10, 17, 28, 10, 273539, tzinfo=UTC)
    assert row.clicked_at == datetime(2025, 6, 10, 18, 0, tzinfo=UTC)
    assert row.opened_at == row.clicked_at  # a click implies an open
    assert row.status == NotificationStatus.SENT
