"""The local mailbox of ``make run``: emails saved as files, one terminal line per burst, and the admin's
"Sent mail (local)" page showing them as recipients would see them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.mail import EmailMultiAlternatives, get_connection
from django.test import Client
from django.urls import reverse

from notifications import local_mailbox
from notifications.local_mailbox import BACKEND, mailbox_message, mailbox_messages
from notifications.models import NotificationStatus
from notifications.services import notifications_dispatch
from tests.factories import CustomerFactory, NotificationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = BACKEND
    settings.LOCAL_MAILBOX_DIR = tmp_path / "mail"
    settings.NOTIFICATIONS_QUIET_HOURS_START = settings.NOTIFICATIONS_QUIET_HOURS_END = 0
    yield tmp_path / "mail"
    local_mailbox._BURST.flush()  # what this test saved is not counted in the next one's burst


def _email(subject: str, html: str = "") -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject, f"Text of {subject}", "billing@example.com", ["ada@example.com"]
    )
    if html:
        message.attach_alternative(html, "text/html")
    return message


def test_emails_are_saved_as_files_with_their_html(mailbox: Path) -> None:
    html = '<p style="color:#123">Pay <a href="https://x.example/?a=1&b=2">here</a> &amp; thanks</p>'
    assert get_connection().send_messages([_email("Your invoice", html), _email("Second")]) == 2
    files = sorted(mailbox.glob("*.eml"))
    assert len(files) == 2
    summaries, total = mailbox_messages()
    assert total == 2
    assert [s.subject for s in summaries] == ["Second", "Your invoice"]  # newest first
    message = mailbox_message(summaries[1].name)
    assert message is not None
    assert message.html.strip() == html
    assert message.text.strip() == "Text of Your invoice"
    assert ("To", "ada@example.com") in message.headers


def test_a_burst_of_emails_logs_one_line(mailbox: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="notifications.local_mailbox")
    connection = get_connection()
    for number in range(12):  # as the dispatcher does: one call per message
        connection.send_messages([_email(f"Reminder {number}")])
    local_mailbox._BURST.flush()  # the timer's job, done now
    lines = [r.getMessage() for r in caplog.records if r.name == "notifications.local_mailbox"]
    assert len(lines) == 1
    assert lines[0].startswith("12 email(s) saved to the local mailbox")
    assert "Reminder 11" in lines[0] and "/admin/notifications/localmail/" in lines[0]


def test_only_the_newest_messages_are_kept(mailbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_mailbox, "KEEP", 3)
    for number in range(5):
        _email(f"Message {number}").send()
    summaries, total = mailbox_messages()
    assert total == 3
    assert [s.subject for s in summaries] == ["Message 4", "Message 3", "Message 2"]


def test_names_outside_the_mailbox_are_refused(mailbox: Path) -> None:
    _email("Hello").send()
    assert mailbox_message("../../settings.py") is None
    assert mailbox_message("20260101-000000-000000-0123abcd.eml") is None


def test_the_dispatcher_delivers_to_the_mailbox(mailbox: Path) -> None:
    notification = NotificationFactory(
        customer=CustomerFactory(), subject="We noticed an issue", body_html="<p>Hi</p>"
    )
    notifications_dispatch(notification_ids=[notification.pk])
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    [summary], _ = mailbox_messages()
    assert summary.subject == "We noticed an issue"


def test_the_sent_mail_page_lists_and_shows_the_rendered_html(mailbox: Path, admin_client: Client) -> None:
    html = '<p class="x">Hello "Ada" &amp; <b>team</b></p>'
    _email("Your card expires soon", html).send()
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "Sent mail (local)" in index
    listing = admin_client.get(reverse("admin:notifications_localmail_changelist"))
    assert listing.status_code == 200
    [summary], _ = mailbox_messages()
    url = reverse("admin:notifications_localmail_message", args=[summary.name])
    assert url in listing.content.decode()
    page = admin_client.get(url).content.decode()
    # The whole email is in the sandboxed frame's srcdoc, escaped, so no quote ends the attribute.
    assert (
        'sandbox="" srcdoc="&lt;p class=&quot;x&quot;&gt;Hello &quot;Ada&quot; &amp;amp; &lt;b&gt;team'
        in page
    )
    assert (
        admin_client.get(reverse("admin:notifications_localmail_message", args=["nope.eml"])).status_code
        == 404
    )


def test_the_page_is_hidden_when_mail_really_leaves(settings, admin_client: Client) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert "Sent mail (local)" not in admin_client.get(reverse("admin:index")).content.decode()
    assert admin_client.get(reverse("admin:notifications_localmail_changelist")).status_code == 403


def test_staff_need_the_outbox_permission(mailbox: Path, staff_user) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(staff_user)
    url = reverse("admin:notifications_localmail_changelist")
    assert client.get(url).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="view_notification"))
    assert client.get(url).status_code == 200
