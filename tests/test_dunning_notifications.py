"""The dunning engine talks through the notifications app: emails, banners, webhooks, staff tasks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from customers.models import InvoiceStatus
from customers.money import format_money
from customers.services import invoice_close
from dunning.models import CaseState
from dunning.portal.tokens import portal_token_read
from dunning.services.staff import case_cancel
from dunning.services.tick import run_tick
from notifications.models import Banner, Notification, NotificationStatus, StaffTask, WebhookDelivery
from notifications.services import notifications_dispatch
from tests.factories import TEST_ACTOR, ContactFactory, WebhookEndpointFactory, failed_invoice

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]
OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # 14:00 in Paris: outside quiet hours


@pytest.fixture(autouse=True)
def _mail(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_day_zero_queues_the_friendly_email_to_billing_contacts_and_shows_a_banner() -> None:
    case, invoice, _ = failed_invoice(failed_at=OPENED)
    contact = ContactFactory(customer=invoice.customer, email="ap@customer.example")
    run_tick(now=OPENED + timedelta(minutes=5))
    email = Notification.objects.get(case_ref=case.pk)
    assert (email.template_key, email.recipient, email.status) == ("failure_1", contact.email, "queued")
    assert "€49.00" in email.body_text
    banner = Banner.objects.get(case_ref=case.pk)
    assert "€49.00" in banner.message
    # Each carries its own signed link to the portal, bound to the invoice: the banner's credits a payment
    # to the banner, the email's to the email.
    banner_link = portal_token_read(banner.cta_url.split("/portal/")[1].rstrip("/"))
    assert (banner_link.customer_id, banner_link.invoice_id, banner_link.source) == (
        invoice.customer_id,
        invoice.pk,
        "banner",
    )
    email_token = re.search(r"/portal/([^/\s]+)/", email.body_text).group(1)  # type: ignore[union-attr]
    assert portal_token_read(email_token).source == "email"


def test_paid_between_queueing_and_sending_means_nothing_is_sent() -> None:
    case, invoice, _ = failed_invoice(failed_at=OPENED)
    run_tick(now=OPENED + timedelta(minutes=5))
    email = Notification.objects.get(case_ref=case.pk, template_key="failure_1")
    # Paid outside dunning, before the dispatcher ran; the case is still open until the next tick.
    invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=TEST_ACTOR)
    notifications_dispatch(notification_ids=[email.pk], now=OPENED + timedelta(minutes=6))
    email.refresh_from_db()
    assert email.status == NotificationStatus.SUPPRESSED
    assert mail.outbox == []


def test_a_closed_case_suppresses_its_reminders_even_while_the_invoice_is_open() -> None:
    case, _, _ = failed_invoice(failed_at=OPENED)
    run_tick(now=OPENED + timedelta(minutes=5))
    email = Notification.objects.get(case_ref=case.pk, template_key="failure_1")
    # Cancelling withdraws queued messages at once.
    case_cancel(case=case, actor=TEST_ACTOR, reason="customer disputes the invoice")
    email.refresh_from_db()
    assert email.status == NotificationStatus.SUPPRESSED
    assert not Banner.objects.filter(case_ref=case.pk, cleared_at__isnull=True).exists()


def test_the_guard_stops_a_row_the_cancel_did_not_reach() -> None:
    case, _, _ = failed_invoice(failed_at=OPENED)
    run_tick(now=OPENED + timedelta(minutes=5))
    email = Notification.objects.get(case_ref=case.pk, template_key="failure_1")
    type(case).objects.filter(pk=case.pk).update(state=CaseState.HANDED_OFF)  # closed by another route
    notifications_dispatch(notification_ids=[email.pk], now=OPENED + timedelta(minutes=6))
    email.refresh_from_db()
    assert email.status == NotificationStatus.SUPPRESSED
    assert "the dunning case is handed_off" in email.status_reason


def test_recovery_cancels_queued_messages_clears_banners_and_thanks_the_customer() -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    run_tick(now=OPENED + timedelta(minutes=5))
    run_tick(now=OPENED + timedelta(days=1))  # the retry succeeds
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    reminder = Notification.objects.get(case_ref=case.pk, template_key="failure_1")
    assert reminder.status == NotificationStatus.SUPPRESSED
    assert not Banner.objects.filter(case_ref=case.pk, cleared_at__isnull=True).exists()
    thanks = Notification.objects.get(case_ref=case.pk, template_key="recovered")
    notifications_dispatch(notification_ids=[thanks.pk], now=OPENED + timedelta(days=1, minutes=1))
    thanks.refresh_from_db()
    assert thanks.status == NotificationStatus.SENT
    assert len(mail.outbox) == 1
    assert thanks.recipient in mail.outbox[0].to[0]
    # The receipt states what was received, not what is left to pay (nothing, once the invoice is paid).
    received = format_money(invoice.amount_due_minor, invoice.currency, "en")
    assert f"we received {received} for invoice {invoice.number}" in mail.outbox[0].body


def test_the_product_is_told_by_signed_webhooks() -> None:
    WebhookEndpointFactory(
        event_types=[
            "case.opened",
            "payment.retry_failed",
            "payment.recovered",
            "customer.entitlement_changed",
            "case.exhausted",
        ]
    )
    failing, _, _ = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    paying, _, _ = failed_invoice(card="pm_sim_4242424242424242", failed_at=OPENED)
    run_tick(now=OPENED + timedelta(days=1))
    deliveries = set(WebhookDelivery.objects.values_list("event_type", "event_id"))
    assert ("case.opened", f"case.opened:{failing.pk}") in deliveries
    assert ("payment.recovered", f"payment.recovered:{paying.pk}") in deliveries
    assert any(kind == "payment.retry_failed" for kind, _ in deliveries)
    changed = [event_id for kind, event_id in deliveries if kind == "customer.entitlement_changed"]
    assert len(changed) == 3  # two customers to past due, one back to active


def test_escalate_steps_create_a_staff_task() -> None:
    case, _, _ = failed_invoice(card="pm_sim_4000000000009995", failed_at=OPENED)
    moment = OPENED
    while moment < OPENED + timedelta(days=29):
        run_tick(now=moment)
        moment += timedelta(hours=6)
    task = StaffTask.objects.get(case_ref=case.pk)
    assert case.invoice.number in task.title


def test_a_portal_payment_gets_its_receipt_at_once_even_in_quiet_hours(settings) -> None:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    from dunning.models import AttemptSource, RecoveryChannel
    from dunning.services.charging import attempt_charge

    hour = timezone.now().hour  # the customer is in UTC below: make "now" quiet
    settings.NOTIFICATIONS_QUIET_HOURS_START, settings.NOTIFICATIONS_QUIET_HOURS_END = hour, (hour + 2) % 24
    _, silent_invoice, _ = failed_invoice(card="pm_sim_4242424242424242", time_zone="UTC")
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242", time_zone="UTC")
    attempt_charge(
        invoice=invoice, source=AttemptSource.PORTAL, actor=TEST_ACTOR, channel=RecoveryChannel.EMAIL_PORTAL
    )
    receipt = Notification.objects.get(case_ref=case.pk, template_key="recovered")
    assert receipt.send_after <= timezone.now()
    # A silent retry's receipt still waits for the morning.
    attempt_charge(invoice=silent_invoice, source=AttemptSource.STAFF, actor=TEST_ACTOR)
    delayed = Notification.objects.get(invoice=silent_invoice, template_key="recovered")
    assert delayed.send_after > timezone.now()
