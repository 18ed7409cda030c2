"""The dispatcher through anymail (its test backend): metadata for tracking, provider errors classified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailRecipientStatus
from django.core import mail

from notifications.models import NotificationStatus, ReasonCode
from notifications.tasks import dispatch_notifications
from tests.factories import NotificationFactory
from tests.support.mail_backends import ScriptedAnymailBackend

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def anymail_backend(settings) -> Iterator[type[ScriptedAnymailBackend]]:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "tests.support.mail_backends.ScriptedAnymailBackend"
    settings.NOTIFICATIONS_QUIET_HOURS_START = settings.NOTIFICATIONS_QUIET_HOURS_END = 0
    ScriptedAnymailBackend.responses = {}
    yield ScriptedAnymailBackend
    ScriptedAnymailBackend.responses = {}


def test_the_message_carries_the_row_id_for_tracking_and_the_provider_id_is_kept() -> None:
    row = NotificationFactory(recipient="ada@example.com", template_key="failure_2")
    dispatch_notifications([row.pk])
    [sent] = mail.outbox
    params = sent.anymail_test_params
    assert params["metadata"] == {"notification_id": str(row.pk)}
    assert params["tags"] == ["failure_2"]
    assert params["text_body"] == row.body_text
    assert params["html_body"] == row.body_html
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert row.esp_message_id == "0"  # the test backend's id: the message's place in its outbox


@pytest.mark.parametrize("status_code", [429, 500, 503])
def test_provider_overload_and_server_errors_are_retried(anymail_backend, status_code: int) -> None:  # type: ignore[no-untyped-def]
    row = NotificationFactory(recipient="ada@example.com")
    anymail_backend.responses["ada@example.com"] = AnymailAPIError(
        "provider unavailable", status_code=status_code
    )
    dispatch_notifications([row.pk])
    row.refresh_from_db()
    assert (row.status, row.reason_code, row.attempts) == ("queued", "retrying", 1)
    assert "provider unavailable" in row.status_reason


def test_an_invalid_request_is_permanent(anymail_backend) -> None:  # type: ignore[no-untyped-def]
    row = NotificationFactory(recipient="ada@example.com")
    anymail_backend.responses["ada@example.com"] = AnymailAPIError("Invalid 'To' address", status_code=422)
    dispatch_notifications([row.pk])
    row.refresh_from_db()
    assert (row.status, row.reason_code) == ("failed", "permanent_error")
    assert "Invalid 'To' address" in row.status_reason


def test_a_recipient_rejected_by_the_provider_fails_the_row(anymail_backend) -> None:  # type: ignore[no-untyped-def]
    row = NotificationFactory(recipient="blocked@example.com")
    anymail_backend.responses["blocked@example.com"] = {
        "recipient_status": {
            "blocked@example.com": AnymailRecipientStatus(message_id=None, status="rejected")
        }
    }
    dispatch_notifications([row.pk])
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED
    assert row.reason_code == ReasonCode.PERMANENT_ERROR
    assert "AnymailRecipientsRefused" in row.status_reason
