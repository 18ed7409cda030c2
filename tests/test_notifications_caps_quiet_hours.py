"""The rolling 7-day cap and quiet hours in the customer's time zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from notifications.models import Notification, NotificationStatus, ReasonCode
from notifications.services import MessageRequest, notifications_dispatch, notifications_enqueue
from notifications.timing import quiet_hours_end
from tests.factories import ContactFactory, CustomerFactory

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def _send(customer, case_ref: int, step: str, now: datetime, **kwargs) -> list[Notification]:  # type: ignore[no-untyped-def]
    request = MessageRequest(
        customer_id=customer.pk,
        template_key=kwargs.pop("template_key", "failure_1"),
        case_ref=case_ref,
        step_ref=step,
        **kwargs,
    )
    return notifications_enqueue(requests=[request], now=now)


def _statuses(rows: list[Notification]) -> list[str]:
    return [r.status for r in rows]


# --- the cap ---------------------------------------------------------------------------------------------


def test_the_fourth_message_in_seven_days_is_capped(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_CAP_PER_7_DAYS = 3
    customer = CustomerFactory(time_zone="UTC")
    start = datetime(2025, 6, 2, 12, tzinfo=UTC)
    for day in range(3):
        assert _statuses(_send(customer, 1, f"s{day}", start + timedelta(days=day))) == ["queued"]
    [capped] = _send(customer, 1, "s3", start + timedelta(days=3))
    assert capped.status == NotificationStatus.SKIPPED
    assert capped.reason_code == ReasonCode.CAPPED
    assert "cap 3" in capped.status_reason


def test_the_cap_counts_every_case_of_the_customer_and_messages_not_recipients(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_CAP_PER_7_DAYS = 2
    customer = CustomerFactory(time_zone="UTC")
    ContactFactory(customer=customer)
    ContactFactory(customer=customer)  # two billing contacts: one message, two rows
    now = datetime(2025, 6, 2, 12, tzinfo=UTC)
    assert _statuses(_send(customer, 1, "a", now)) == ["queued", "queued"]
    assert _statuses(_send(customer, 2, "a", now)) == ["queued", "queued"]  # another case, same customer
    assert _statuses(_send(customer, 3, "a", now)) == ["skipped", "skipped"]


def test_requests_for_one_customer_in_one_batch_share_the_cap(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_CAP_PER_7_DAYS = 1
    customer = CustomerFactory(time_zone="UTC")
    now = datetime(2025, 6, 2, 12, tzinfo=UTC)
    requests = [
        MessageRequest(customer_id=customer.pk, template_key="failure_1", case_ref=case, step_ref="x")
        for case in (1, 2)
    ]
    rows = notifications_enqueue(requests=requests, now=now)
    assert sorted(r.status for r in rows) == ["queued", "skipped"]


def test_the_final_notice_and_the_recovered_confirmation_are_never_capped(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_CAP_PER_7_DAYS = 1
    customer = CustomerFactory(time_zone="UTC")
    now = datetime(2025, 6, 2, 12, tzinfo=UTC)
    _send(customer, 1, "first", now)
    assert _statuses(_send(customer, 1, "final", now, template_key="final_notice", bypass_cap=True)) == [
        "queued"
    ]
    assert _statuses(_send(customer, 1, "recovered", now, template_key="recovered", bypass_cap=True)) == [
        "queued"
    ]
    assert _statuses(_send(customer, 1, "another", now)) == ["skipped"]


def test_skipped_and_suppressed_messages_do_not_use_the_allowance(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_CAP_PER_7_DAYS = 1
    customer = CustomerFactory(time_zone="UTC")
    now = datetime(2025, 6, 2, 12, tzinfo=UTC)
    [row] = _send(customer, 1, "a", now)
    Notification.objects.filter(pk=row.pk).update(status=NotificationStatus.SUPPRESSED)
    assert _statuses(_send(customer, 1, "b", now)) == ["queued"]


def test_the_window_is_seven_times_24_hours_even_across_a_dst_change(settings) -> None:  # type: ignore[no-untyped-def]
    """Paris springs forward on 30 March 2025: seven calendar days hold only 167 hours there. The cap's
    window is 168 real hours, so a message exactly 7 local days later is still inside it."""
    settings.NOTIFICATIONS_CAP_PER_7_DAYS = 1
    customer = CustomerFactory(time_zone="Europe/Paris")
    first = datetime(2025, 3, 27, 10, 0, tzinfo=PARIS)  # 09:00 UTC
    assert _statuses(_send(customer, 1, "a", first.astimezone(UTC))) == ["queued"]
    same_local_time_a_week_later = datetime(2025, 4, 3, 10, 0, tzinfo=PARIS)  # 08:00 UTC: 167 h later
    assert _statuses(_send(customer, 1, "b", same_local_time_a_week_later.astimezone(UTC))) == ["skipped"]
    after_168_hours = first.astimezone(UTC) + timedelta(hours=168, seconds=1)
    assert _statuses(_send(customer, 1, "c", after_168_hours)) == ["queued"]


# --- quiet hours -----------------------------------------------------------------------------------------


def test_an_evening_message_waits_for_8_am_local_time() -> None:
    customer = CustomerFactory(time_zone="Europe/Paris")
    evening = datetime(2025, 6, 10, 22, 30, tzinfo=PARIS)
    [row] = _send(customer, 1, "a", evening.astimezone(UTC))
    assert row.status == NotificationStatus.QUEUED  # delayed, not dropped
    assert row.reason_code == ReasonCode.QUIET_HOURS
    assert row.send_after == datetime(2025, 6, 11, 8, 0, tzinfo=PARIS)


def test_an_early_morning_message_waits_until_8_the_same_day() -> None:
    customer = CustomerFactory(time_zone="America/New_York")
    early = datetime(2025, 6, 10, 3, 15, tzinfo=NEW_YORK)
    [row] = _send(customer, 1, "a", early.astimezone(UTC))
    assert row.send_after == datetime(2025, 6, 10, 8, 0, tzinfo=NEW_YORK)


def test_a_daytime_message_is_due_at_once() -> None:
    customer = CustomerFactory(time_zone="Asia/Tokyo")
    now = datetime(2025, 6, 10, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
    [row] = _send(customer, 1, "a", now)
    assert row.send_after == now
    assert row.reason_code == ""


@pytest.mark.parametrize(
    ("zone", "evening", "expected_utc"),
    [
        # Paris springs forward in the night of 29-30 March 2025: 08:00 is UTC+2 the next morning.
        ("Europe/Paris", datetime(2025, 3, 29, 23, 0), datetime(2025, 3, 30, 6, 0, tzinfo=UTC)),
        # … and falls back in the night of 25-26 October 2025: 08:00 is UTC+1 again.
        ("Europe/Paris", datetime(2025, 10, 25, 21, 30), datetime(2025, 10, 26, 7, 0, tzinfo=UTC)),
        # New York falls back on 2 November 2025 (EDT -4 to EST -5).
        ("America/New_York", datetime(2025, 11, 1, 22, 0), datetime(2025, 11, 2, 13, 0, tzinfo=UTC)),
        # … and springs forward on 9 March 2025.
        ("America/New_York", datetime(2025, 3, 8, 21, 0), datetime(2025, 3, 9, 12, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_end_at_8_local_across_dst(zone: str, evening: datetime, expected_utc: datetime) -> None:
    customer = CustomerFactory(time_zone=zone)
    moment = evening.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    [row] = _send(customer, 1, "a", moment)
    assert row.send_after == expected_utc
    assert row.send_after.astimezone(ZoneInfo(zone)).hour == 8


def test_quiet_hours_follow_the_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_QUIET_HOURS_START = 20
    settings.NOTIFICATIONS_QUIET_HOURS_END = 9
    moment = datetime(2025, 6, 10, 20, 5, tzinfo=UTC)
    assert quiet_hours_end(moment, "UTC") == datetime(2025, 6, 11, 9, 0, tzinfo=UTC)
    settings.NOTIFICATIONS_QUIET_HOURS_START = settings.NOTIFICATIONS_QUIET_HOURS_END = 0
    assert quiet_hours_end(moment, "UTC") is None  # equal start and end: no quiet hours


def test_a_delayed_message_is_not_sent_before_its_time_and_is_sent_after(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    customer = CustomerFactory(time_zone="Europe/Paris")
    evening = datetime(2025, 6, 10, 22, 30, tzinfo=PARIS).astimezone(UTC)
    [row] = _send(customer, 1, "a", evening)
    assert notifications_dispatch(now=evening + timedelta(hours=1)).claimed == 0
    assert mail.outbox == []
    morning = datetime(2025, 6, 11, 8, 1, tzinfo=PARIS).astimezone(UTC)
    assert notifications_dispatch(now=morning).sent == 1
    assert len(mail.outbox) == 1
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT


def test_the_dispatcher_itself_never_sends_during_quiet_hours(settings) -> None:  # type: ignore[no-untyped-def]
    """A row that became due by backoff at night is pushed to the morning at send time."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    customer = CustomerFactory(time_zone="Europe/Paris")
    night = datetime(2025, 6, 10, 23, 0, tzinfo=PARIS).astimezone(UTC)
    [row] = _send(customer, 1, "a", datetime(2025, 6, 10, 12, 0, tzinfo=UTC))
    result = notifications_dispatch(now=night)
    assert (result.claimed, result.sent, result.delayed) == (1, 0, 1)
    row.refresh_from_db()
    assert row.status == NotificationStatus.QUEUED
    assert row.send_after == datetime(2025, 6, 11, 8, 0, tzinfo=PARIS)
    assert mail.outbox == []


def test_a_link_the_customer_asked_for_goes_at_once_and_never_counts(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFICATIONS_CAP_PER_7_DAYS = 1
    customer = CustomerFactory(time_zone="Europe/Paris")
    evening = datetime(2025, 6, 10, 22, 30, tzinfo=PARIS).astimezone(UTC)
    [asked] = _send(
        customer, None, "portal_link:1", evening, template_key="portal_link", customer_requested=True
    )
    assert (asked.status, asked.send_after, asked.reason_code) == ("queued", evening, "")
    assert notifications_dispatch(notification_ids=[asked.pk], now=evening).sent == 1
    assert mail.outbox[0].subject == "Your secure link to update your payment method"
    # It used none of the allowance: the next dunning message is not capped (only delayed to morning).
    [dunning] = _send(customer, 1, "v1:1", evening)
    assert (dunning.status, dunning.reason_code) == ("queued", "quiet_hours")
