"""The weekly digest (off by default), its schedule, and the refresh command."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django_q.models import Schedule

from reporting.schedules import schedules
from reporting.tasks import rebuild_rollups, send_weekly_digest
from tests.factories.reporting import build_known_data

pytestmark = pytest.mark.django_db
MONDAY = date(2026, 3, 30)  # the digest covers Monday 2026-03-23 to Sunday 2026-03-29


@pytest.fixture
def finance(django_user_model, settings):  # type: ignore[no-untyped-def]
    group = Group.objects.create(name=settings.NOTIFICATIONS_STAFF_GROUP)
    for name, email, active in (
        ("ana", "Ana@Example.com", True),
        ("bo", "", True),
        ("cy", "cy@example.com", False),
    ):
        user = django_user_model.objects.create_user(
            username=name, email=email, is_staff=True, is_active=active
        )
        user.groups.add(group)
    return group


def test_the_digest_is_off_unless_switched_on(finance) -> None:  # type: ignore[no-untyped-def]
    assert send_weekly_digest() == "not sent: the weekly digest is switched off (REPORTING_WEEKLY_DIGEST)"
    assert mail.outbox == []
    assert [s["name"] for s in schedules()] == ["reporting: nightly rollup rebuild"]


def test_the_digest_sends_last_weeks_headline_numbers_to_the_staff_group(finance, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REPORTING_WEEKLY_DIGEST = True
    build_known_data()
    from reporting.services import digest_send

    result = digest_send(today=MONDAY)
    assert result.sent and result.recipients == ("ana@example.com",)  # active members with an address
    (message,) = mail.outbox
    # The week of 2026-03-23: cases 6 (JPY, exhausted), 7 (EUR, recovered by staff), 8 (EUR, cancelled).
    assert message.subject == "Recovery digest 2026-03-23 to 2026-03-29: 33.3% recovered"
    assert message.to == ["ana@example.com"]
    body = message.body
    assert "Failed invoices: 3" in body
    assert "Recovered: 1 (33.3%)" in body
    assert "EUR: failed €120.00, recovered €80.00 (66.7% by value), at risk €0.00" in body
    assert "JPY: failed ¥5,000, recovered ¥0 (0.0% by value), at risk ¥0" in body
    assert "Median time to recovery: 1.0 day" in body
    assert "/admin/reports/?start=2026-03-23&end=2026-03-29" in body
    html = message.alternatives[0][0]
    assert "€80.00" in html and "Open the dashboard" in html


def test_configured_recipients_replace_the_group(finance, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REPORTING_WEEKLY_DIGEST = True
    settings.REPORTING_DIGEST_RECIPIENTS = ["cfo@example.com", " ar@example.com "]
    assert send_weekly_digest() == "sent to 2 recipient(s)"
    assert mail.outbox[0].to == ["cfo@example.com", "ar@example.com"]
    assert "Failed invoices: 0" in mail.outbox[0].body


def test_no_recipient_means_no_email(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REPORTING_WEEKLY_DIGEST = True
    assert send_weekly_digest() == "not sent: nobody to send it to"
    assert mail.outbox == []


def test_sync_schedules_installs_the_digest_on_mondays_when_switched_on(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REPORTING_WEEKLY_DIGEST = True
    call_command("sync_schedules", stdout=StringIO())
    digest = Schedule.objects.get(name="reporting: weekly digest")
    assert (digest.func, digest.schedule_type) == ("reporting.tasks.send_weekly_digest", "W")
    assert (digest.next_run.weekday(), digest.next_run.hour) == (0, 7)
    assert digest.next_run > datetime.now(digest.next_run.tzinfo)
    assert digest.next_run - datetime.now(digest.next_run.tzinfo) <= timedelta(days=7)
    rebuild = Schedule.objects.get(name="reporting: nightly rollup rebuild")
    assert (rebuild.func, rebuild.schedule_type, rebuild.next_run.hour) == (
        "reporting.tasks.rebuild_rollups",
        "D",
        3,
    )
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    assert "reporting: weekly digest: unchanged" in out.getvalue()


def test_the_refresh_command_and_the_nightly_rebuild() -> None:
    build_known_data()
    out = StringIO()
    call_command("refresh_reports", stdout=out)
    assert "Rebuilt: 12 case(s) recomputed" in out.getvalue()
    out = StringIO()
    call_command("refresh_reports", stdout=out)
    assert out.getvalue() == "Nothing changed since the last refresh.\n"
    assert rebuild_rollups().startswith("rebuilt 12 case(s) over ")
