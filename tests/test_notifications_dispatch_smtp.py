"""The dispatcher over real SMTP (an aiosmtpd sink): send once, check again at send time, retry or fail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from customers.actors import Actor
from customers.models import InvoiceStatus
from customers.services import invoice_close
from notifications import guards
from notifications.models import Notification, NotificationStatus, ReasonCode
from notifications.services import MessageRequest, notifications_dispatch, notifications_enqueue
from notifications.services.dispatch import notifications_dispatch_due, notifications_reap_interrupted
from notifications.tasks import dispatch_notifications
from tests.factories import ContactFactory, CustomerFactory, InvoiceFactory, NotificationFactory
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_quiet_hours(settings) -> None:  # type: ignore[no-untyped-def]
    # These tests send at the wall-clock time; quiet hours have their own tests.
    settings.NOTIFICATIONS_QUIET_HOURS_START = settings.NOTIFICATIONS_QUIET_HOURS_END = 0


@pytest.fixture
def smtp(settings) -> Iterator[SmtpSink]:  # type: ignore[no-untyped-def]
    sink = SmtpSink().start()
    for name, value in sink.settings().items():
        setattr(settings, name, value)
    yield sink
    sink.stop()


@pytest.fixture
def customer():  # type: ignore[no-untyped-def]
    customer = CustomerFactory(time_zone="UTC", name="Ada Lovelace", email="ada@example.com")
    ContactFactory(customer=customer, email="billing@acme.example", name="Billing Desk")
    return customer


def _daytime() -> datetime:
    return datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)


def _enqueue(customer, invoice=None, case_ref: int = 7, step: str = "v1:1") -> list[Notification]:  # type: ignore[no-untyped-def]
    request = MessageRequest(
        customer_id=customer.pk,
        template_key="failure_1",
        case_ref=case_ref,
        step_ref=step,
        invoice_id=invoice.pk if invoice else None,
        context={"portal_url": "https://pay.example.com/p/tok/"},
    )
    return notifications_enqueue(requests=[request], now=_daytime())


def test_an_enqueued_message_goes_out_over_smtp_after_commit(
    smtp, customer, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    invoice = InvoiceFactory(customer=customer, number="INV-9", amount_due_minor=4900)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        [row] = _enqueue(customer, invoice)
        assert smtp.messages == []  # nothing leaves inside the dunning step's transaction
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "Billing Desk <billing@acme.example>"
    assert message["Subject"] == "We noticed an issue with your Example SaaS payment"
    assert message["X-Dunning-Notification"] == str(row.pk)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "INV-9" in text and "https://pay.example.com/p/tok/" in text
    assert 'href="https://pay.example.com/p/tok/"' in html
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert row.sent_at is not None
    assert row.attempts == 1
    assert message["Message-ID"] == row.message_id


def test_paid_between_queueing_and_sending_means_nothing_is_sent(smtp, customer) -> None:  # type: ignore[no-untyped-def]
    invoice = InvoiceFactory(customer=customer)
    [row] = _enqueue(customer, invoice)
    invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=Actor.system("test"))
    dispatch_notifications([row.pk])
    assert smtp.messages == []
    row.refresh_from_db()
    assert row.status == NotificationStatus.SUPPRESSED
    assert row.reason_code == ReasonCode.INVOICE_CLOSED
    assert "paid" in row.status_reason


@pytest.mark.parametrize("status", [InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE])
def test_void_or_uncollectible_invoices_suppress_too(smtp, customer, status: str) -> None:  # type: ignore[no-untyped-def]
    invoice = InvoiceFactory(customer=customer)
    [row] = _enqueue(customer, invoice)
    invoice_close(invoice=invoice, status=status, actor=Actor.system("test"))
    dispatch_notifications([row.pk])
    assert smtp.messages == []
    row.refresh_from_db()
    assert row.status == NotificationStatus.SUPPRESSED


def test_a_registered_guard_suppresses_with_its_reason(smtp, customer) -> None:  # type: ignore[no-untyped-def]
    closed_cases = {7}

    def case_still_open(notification: Notification) -> str | None:
        return "case no longer open" if notification.case_ref in closed_cases else None

    guards.register_send_guard(case_still_open)
    try:
        [closed] = _enqueue(customer, case_ref=7)
        [still_open] = _enqueue(customer, case_ref=8)
        notifications_dispatch(notification_ids=[closed.pk, still_open.pk])
    finally:
        guards.unregister_send_guard(case_still_open)
    closed.refresh_from_db()
    still_open.refresh_from_db()
    assert (closed.status, closed.reason_code, closed.status_reason) == (
        "suppressed",
        "guard",
        "case no longer open",
    )
    assert still_open.status == NotificationStatus.SENT
    assert len(smtp.messages) == 1


def test_a_retried_task_never_sends_twice(smtp, customer) -> None:  # type: ignore[no-untyped-def]
    [row] = _enqueue(customer)
    dispatch_notifications([row.pk])
    dispatch_notifications([row.pk])  # the queue delivered the task again
    notifications_dispatch_due()  # and the periodic sweep ran too
    assert len(smtp.messages) == 1
    row.refresh_from_db()
    assert row.attempts == 1


def test_a_row_claimed_by_another_worker_is_left_alone(smtp, customer) -> None:  # type: ignore[no-untyped-def]
    [row] = _enqueue(customer)
    Notification.objects.filter(pk=row.pk).update(
        status=NotificationStatus.SENDING, last_attempt_at=_daytime()
    )
    assert notifications_dispatch(notification_ids=[row.pk]).claimed == 0
    assert smtp.messages == []


def test_a_temporary_smtp_refusal_is_retried_with_backoff(smtp, customer, settings) -> None:  # type: ignore[no-untyped-def]
    smtp.handler.rcpt_replies["billing@acme.example"] = "451 4.3.0 Mailbox busy, try again later"
    [row] = _enqueue(customer)
    now = datetime.now(UTC)
    notifications_dispatch(notification_ids=[row.pk], now=now)
    row.refresh_from_db()
    assert row.status == NotificationStatus.QUEUED
    assert row.reason_code == ReasonCode.RETRYING
    assert "451" in row.status_reason
    assert row.attempts == 1
    assert row.send_after == now + timedelta(minutes=1)
    # Not due yet: nothing happens. Due, and the mailbox is back: sent, once.
    assert notifications_dispatch(notification_ids=[row.pk], now=now + timedelta(seconds=30)).claimed == 0
    smtp.handler.rcpt_replies.clear()
    notifications_dispatch(notification_ids=[row.pk], now=now + timedelta(minutes=2))
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert row.attempts == 2
    assert len(smtp.messages) == 1


def test_transient_errors_give_up_after_the_maximum_attempts(smtp, customer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_MAX_SEND_ATTEMPTS = 3
    smtp.handler.rcpt_replies["billing@acme.example"] = "421 4.7.0 Try again later"
    [row] = _enqueue(customer)
    now = datetime.now(UTC)
    delays = []
    for _ in range(3):
        notifications_dispatch(notification_ids=[row.pk], now=now)
        row.refresh_from_db()
        if row.status == NotificationStatus.QUEUED:
            delays.append(row.send_after - now)
            now = row.send_after
    assert delays == [timedelta(minutes=1), timedelta(minutes=5)]
    assert row.status == NotificationStatus.FAILED
    assert row.reason_code == ReasonCode.GAVE_UP
    assert "3 attempts" in row.status_reason


def test_a_permanent_smtp_refusal_fails_the_row_with_the_reason(smtp, customer) -> None:  # type: ignore[no-untyped-def]
    smtp.handler.rcpt_replies["billing@acme.example"] = "550 5.1.1 No such user here"
    [row] = _enqueue(customer)
    dispatch_notifications([row.pk])
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED
    assert row.reason_code == ReasonCode.PERMANENT_ERROR
    assert "550" in row.status_reason and "No such user" in row.status_reason
    assert smtp.messages == []


def test_one_refused_recipient_does_not_stop_the_others(smtp) -> None:  # type: ignore[no-untyped-def]
    first, second = CustomerFactory(time_zone="UTC"), CustomerFactory(time_zone="UTC")
    smtp.handler.rcpt_replies[first.email.lower()] = "550 5.1.1 No such user"
    rows = [*_enqueue(first, case_ref=1), *_enqueue(second, case_ref=2)]
    result = notifications_dispatch(notification_ids=[r.pk for r in rows])
    assert (result.failed, result.sent) == (1, 1)
    assert [m["To"] for m in smtp.messages] == [f"{second.name} <{second.email}>"]


def test_a_server_that_is_down_is_a_transient_error(settings, customer) -> None:  # type: ignore[no-untyped-def]
    from tests.support.smtp_sink import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    [row] = _enqueue(customer)
    dispatch_notifications([row.pk])
    row.refresh_from_db()
    assert row.status == NotificationStatus.QUEUED
    assert row.reason_code == ReasonCode.RETRYING
    assert "ConnectionRefusedError" in row.status_reason


def test_a_row_left_sending_by_a_dead_worker_is_failed_not_resent(smtp) -> None:  # type: ignore[no-untyped-def]
    stale = NotificationFactory(
        status=NotificationStatus.SENDING, last_attempt_at=datetime.now(UTC) - timedelta(minutes=30)
    )
    fresh = NotificationFactory(status=NotificationStatus.SENDING, last_attempt_at=datetime.now(UTC))
    assert notifications_reap_interrupted() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.reason_code) == ("failed", "interrupted")
    assert fresh.status == NotificationStatus.SENDING
    assert smtp.messages == []


def test_the_recovered_confirmation_goes_out_after_payment_and_survives_recovery(smtp, customer) -> None:  # type: ignore[no-untyped-def]
    """Reminders stop at payment; the message about the payment itself must not."""
    from notifications.services import notifications_cancel_for_cases

    invoice = InvoiceFactory(customer=customer, number="INV-R")
    [reminder] = _enqueue(customer, invoice, case_ref=9, step="v1:2")
    invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=Actor.system("test"))
    [thanks] = notifications_enqueue(
        requests=[
            MessageRequest(
                customer_id=customer.pk,
                template_key="recovered",
                case_ref=9,
                step_ref="recovered",
                invoice_id=invoice.pk,
                bypass_cap=True,
                only_while_unpaid=False,
            )
        ],
        now=_daytime(),
    )
    assert notifications_cancel_for_cases(case_refs=[9], reason="recovered") == 1

    def case_closed(notification: Notification) -> str | None:
        return "case no longer open"

    guards.register_send_guard(case_closed)
    try:
        notifications_dispatch(notification_ids=[reminder.pk, thanks.pk])
    finally:
        guards.unregister_send_guard(case_closed)
    reminder.refresh_from_db()
    thanks.refresh_from_db()
    assert reminder.status == NotificationStatus.SUPPRESSED
    assert thanks.status == NotificationStatus.SENT
    assert [m["Subject"] for m in smtp.messages] == ["Thank you: your Example SaaS payment went through"]
