"""Stripe's events, as localstripe emits them, through the webhook: cases open, recover, close; cards are
stored and retried; reminders go out. Payloads are hints: handlers re-fetch from Stripe."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from customers.models import Customer, Invoice, InvoiceStatus, PaymentMethod
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseState,
    DeclineCategory,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
    StripeEvent,
    StripeEventStatus,
)
from dunning.services.stripe_sync import stripe_card_expiring, stripe_events_sweep, stripe_invoice_upcoming
from dunning.services.stripe_sync.common import stripe_gateway
from notifications.models import Notification
from tests.factories import TEST_ACTOR
from tests.support import stripe_account as cards
from tests.support.stripe_account import StripeAccount, deliver, make_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(client: Client, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Deliver an event (signed) and run its processing task after the commit, as in production."""

    def send(event: dict[str, Any]) -> StripeEvent:
        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(client, event)
        assert response.status_code == 200, response.content
        return StripeEvent.objects.get(event_id=event["id"])

    return send


def test_a_failed_stripe_invoice_opens_a_case_and_copies_customer_invoice_and_card(
    stripe_account: StripeAccount, inbox
) -> None:  # type: ignore[no-untyped-def]
    customer, method, invoice = stripe_account.failed_invoice(card=cards.DECLINE_AFTER_ATTACH)
    row = inbox(stripe_account.last_event("invoice.payment_failed"))
    assert row.status == StripeEventStatus.PROCESSED, row.error
    assert row.result.startswith("opened case")

    local = Customer.objects.get(gateway_customer_id=customer.id)
    assert (local.external_id, local.email) == (customer.id, "billing@example.com")
    card = PaymentMethod.objects.get(customer=local)
    assert (card.gateway_payment_method_id, card.last4, card.is_default) == (method.id, "0341", True)
    copy = Invoice.objects.get(gateway="stripe", gateway_invoice_id=invoice.id)
    assert (copy.number, copy.amount_due_minor, copy.currency, copy.status) == (
        invoice.number,
        4900,
        "EUR",
        "open",
    )
    case = DunningCase.objects.get(invoice=copy)
    assert (case.state, case.decline_code, case.decline_category) == (
        CaseState.OPEN,
        "generic_decline",
        DeclineCategory.SOFT,
    )
    attempt = PaymentAttempt.objects.get(invoice=copy)
    assert (attempt.source, attempt.status, attempt.gateway) == (
        AttemptSource.INITIAL,
        AttemptStatus.FAILED,
        "stripe",
    )
    assert attempt.gateway_reference.startswith("ch_")
    assert attempt.payment_method == card


def test_the_same_failure_reported_again_records_nothing_new(stripe_account: StripeAccount, inbox) -> None:  # type: ignore[no-untyped-def]
    _, _, invoice = stripe_account.failed_invoice()
    event = stripe_account.last_event("invoice.payment_failed")
    inbox(event)
    # Stripe's retry of the same delivery is a duplicate; a new event about the same charge (or a replay)
    # finds the charge already recorded.
    inbox(event)
    again = inbox({**event, "id": event["id"] + "_redelivered"})
    assert again.result.startswith("failure ch_")
    assert PaymentAttempt.objects.filter(invoice__gateway_invoice_id=invoice.id).count() == 1


def test_a_second_failure_at_stripe_advances_the_case(stripe_account: StripeAccount, inbox) -> None:  # type: ignore[no-untyped-def]
    _, _, invoice = stripe_account.failed_invoice()
    inbox(stripe_account.last_event("invoice.payment_failed"))
    assert stripe_account.pay_invoice(invoice.id) == "generic_decline"  # Stripe's own next attempt
    row = inbox(stripe_account.last_event("invoice.payment_failed"))
    assert row.result.startswith("recorded another failure")
    assert PaymentAttempt.objects.filter(invoice__gateway_invoice_id=invoice.id).count() == 2
    assert DunningCase.objects.count() == 1


def test_paid_at_stripe_recovers_the_case_and_a_late_failure_changes_nothing(
    stripe_account: StripeAccount, inbox
) -> None:  # type: ignore[no-untyped-def]
    customer, _, invoice = stripe_account.failed_invoice()
    inbox(stripe_account.last_event("invoice.payment_failed"))
    assert stripe_account.pay_invoice(invoice.id) == "generic_decline"
    late_failure = stripe_account.last_event("invoice.payment_failed")
    stripe_account.card(customer.id, cards.GOOD_CARD)
    assert stripe_account.pay_invoice(invoice.id) == "paid"  # e.g. the customer paid the hosted invoice

    paid = inbox(stripe_account.last_event("invoice.paid"))
    assert paid.status == StripeEventStatus.PROCESSED, paid.error
    case = DunningCase.objects.get()
    assert (case.state, case.recovery_channel, case.recovered_amount_minor) == (
        CaseState.RECOVERED,
        RecoveryChannel.PAID_OUTSIDE,
        4900,
    )
    assert case.invoice.status == InvoiceStatus.PAID
    inbox(stripe_account.last_event("invoice.payment_succeeded"))  # the twin event: nothing more

    # The second failure's event arrives after the payment: Stripe says paid now, so nothing moves back.
    late = inbox(late_failure)
    assert late.status == StripeEventStatus.PROCESSED
    assert "already paid" in late.result
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert PaymentAttempt.objects.count() == 1
    assert Invoice.objects.get().status == InvoiceStatus.PAID


def test_a_failure_we_learn_of_only_after_payment_opens_no_case(stripe_account: StripeAccount, inbox) -> None:  # type: ignore[no-untyped-def]
    customer, _, invoice = stripe_account.failed_invoice()
    failure = stripe_account.last_event("invoice.payment_failed")
    stripe_account.card(customer.id, cards.GOOD_CARD)
    stripe_account.pay_invoice(invoice.id)
    assert inbox(stripe_account.last_event("invoice.paid")).status == StripeEventStatus.IGNORED  # not tracked
    assert inbox(failure).status == StripeEventStatus.IGNORED
    assert not DunningCase.objects.exists()
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(
    ("action", "event_type", "status"),
    [
        ("void_invoice", "invoice.voided", InvoiceStatus.VOID),
        ("mark_uncollectible", "invoice.marked_uncollectible", InvoiceStatus.UNCOLLECTIBLE),
    ],
)
def test_a_void_or_uncollectible_invoice_cancels_its_case(
    stripe_account: StripeAccount, inbox, action: str, event_type: str, status: str
) -> None:  # type: ignore[no-untyped-def]
    _, _, invoice = stripe_account.failed_invoice()
    inbox(stripe_account.last_event("invoice.payment_failed"))
    getattr(stripe_account.sdk.v1.invoices, action)(invoice.id)
    row = inbox(stripe_account.last_event(event_type))
    assert row.status == StripeEventStatus.PROCESSED, row.error
    case = DunningCase.objects.get()
    assert (case.state, case.invoice.status) == (CaseState.CANCELLED, status)
    # Replaying it changes nothing.
    from dunning.services.stripe_sync import stripe_events_replay

    assert stripe_events_replay(pks=[row.pk], actor=TEST_ACTOR) == {StripeEventStatus.PROCESSED: 1}
    assert DunningCase.objects.get().events.filter(to_state=CaseState.CANCELLED).count() == 1


def test_a_payment_needing_authentication_takes_the_authentication_path(
    stripe_account: StripeAccount, inbox
) -> None:  # type: ignore[no-untyped-def]
    _, _, invoice = stripe_account.failed_invoice(card=cards.NEEDS_AUTHENTICATION)
    row = inbox(stripe_account.last_event("invoice.payment_action_required"))
    assert row.status == StripeEventStatus.PROCESSED, row.error
    case = DunningCase.objects.get()
    assert (case.decline_code, case.decline_category) == (
        "authentication_required",
        DeclineCategory.AUTHENTICATION_REQUIRED,
    )


def test_the_card_account_updater_stores_the_new_expiry_and_retries_once(
    stripe_account: StripeAccount, inbox
) -> None:  # type: ignore[no-untyped-def]
    _, method, invoice = stripe_account.failed_invoice(card=cards.DECLINE_AFTER_ATTACH)
    inbox(stripe_account.last_event("invoice.payment_failed"))
    stripe_account.server.card_account_updater(method.id, exp_month=3, exp_year=2033)
    event = stripe_account.last_event("payment_method.automatically_updated")
    row = inbox(event)
    assert row.status == StripeEventStatus.PROCESSED, row.error
    card = PaymentMethod.objects.get(gateway_payment_method_id=method.id)
    assert (card.exp_month, card.exp_year) == (3, 2033)
    retries = PaymentAttempt.objects.filter(source=AttemptSource.CARD_UPDATED)
    assert [(a.status, a.decline_code) for a in retries] == [(AttemptStatus.FAILED, "generic_decline")]
    # The same change reported again (or replayed) retries nothing more.
    inbox({**event, "id": event["id"] + "_again"})
    assert retries.count() == 1


def test_a_customer_update_that_does_not_touch_the_default_is_ignored(
    stripe_account: StripeAccount, inbox
) -> None:  # type: ignore[no-untyped-def]
    customer = stripe_account.customer()
    stripe_account.sdk.v1.customers.update(customer.id, params={"email": "new@example.com"})
    row = inbox(stripe_account.last_event("customer.updated"))
    assert (row.status, row.result) == (
        StripeEventStatus.IGNORED,
        "the default payment method did not change",
    )


def test_a_deferred_event_waits_for_our_own_charge_then_the_sweep_handles_it(
    stripe_account: StripeAccount, inbox
) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    customer, _, invoice = stripe_account.failed_invoice()
    inbox(stripe_account.last_event("invoice.payment_failed"))
    local = Invoice.objects.get()
    in_flight = PaymentAttempt.objects.create(
        invoice=local,
        number=9,
        source=AttemptSource.STAFF,
        amount_minor=4900,
        currency="EUR",
        gateway="stripe",
    )
    stripe_account.card(customer.id, cards.GOOD_CARD)
    stripe_account.pay_invoice(invoice.id)
    row = inbox(stripe_account.last_event("invoice.paid"))
    assert row.status == StripeEventStatus.RECEIVED
    assert row.error.startswith("deferred: a charge of this invoice is in flight")
    PaymentAttempt.objects.filter(pk=in_flight.pk).update(status=AttemptStatus.FAILED)
    assert stripe_events_sweep(now=timezone.now() + timedelta(minutes=6)) == {StripeEventStatus.PROCESSED: 1}
    assert DunningCase.objects.get().state == CaseState.RECOVERED


def _customer_with_card(account: StripeAccount, *, exp_year: int) -> tuple[Customer, Any]:
    stripe_customer = account.customer()
    method = account.card(stripe_customer.id, cards.GOOD_CARD, exp_year=exp_year)
    customer = Customer.objects.create(
        external_id="acme", name="Acme", email="billing@acme.example", gateway_customer_id=stripe_customer.id
    )
    return customer, method


@pytest.mark.parametrize(
    ("today", "template"),
    [
        (datetime(2030, 12, 1, 9, tzinfo=UTC), "predunning_expiry_30d"),
        (datetime(2030, 12, 26, 9, tzinfo=UTC), "predunning_expiry_7d"),
    ],
)
def test_an_expiring_default_card_gets_one_reminder(
    stripe_account: StripeAccount, today: datetime, template: str
) -> None:
    customer, method = _customer_with_card(stripe_account, exp_year=2030)
    card = {
        "id": method.id,
        "object": "card",
        "customer": method.customer,
        "brand": "Visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
    }
    gateway = stripe_gateway()
    first = stripe_card_expiring(gateway=gateway, card=card, actor=TEST_ACTOR, now=today)
    again = stripe_card_expiring(gateway=gateway, card=card, actor=TEST_ACTOR, now=today)
    assert first.note == f"{template} reminder queued"
    assert "nothing new" in again.note
    message = Notification.objects.get(customer=customer)
    assert (message.template_key, message.case_ref, message.recipient) == (
        template,
        None,
        "billing@acme.example",
    )
    assert "4242" in message.body_text


def test_the_expiring_event_through_the_webhook(stripe_account: StripeAccount, inbox) -> None:  # type: ignore[no-untyped-def]
    customer, method = _customer_with_card(stripe_account, exp_year=2030)
    event = make_event(
        "customer.source.expiring",
        {
            "id": method.id,
            "object": "card",
            "customer": method.customer,
            "exp_month": 12,
            "exp_year": 2099,
        },
    )
    row = inbox(event)
    assert row.status == StripeEventStatus.PROCESSED, row.error
    assert (
        Notification.objects.filter(customer=customer, template_key__startswith="predunning_expiry").count()
        == 1
    )


def test_an_upcoming_invoice_reminds_only_when_the_card_will_have_expired(
    stripe_account: StripeAccount,
) -> None:
    customer, method = _customer_with_card(stripe_account, exp_year=2030)
    upcoming = {
        "object": "invoice",
        "customer": method.customer,
        "collection_method": "charge_automatically",
        "next_payment_attempt": int(datetime(2031, 1, 5, tzinfo=UTC).timestamp()),
    }
    gateway = stripe_gateway()
    today = datetime(2030, 12, 29, tzinfo=UTC)
    outcome = stripe_invoice_upcoming(gateway=gateway, invoice=upcoming, actor=TEST_ACTOR, now=today)
    assert outcome.note == "predunning_expiry_7d reminder queued"
    sooner = {**upcoming, "next_payment_attempt": int(datetime(2030, 12, 30, tzinfo=UTC).timestamp())}
    outcome = stripe_invoice_upcoming(gateway=gateway, invoice=sooner, actor=TEST_ACTOR, now=today)
    assert outcome.status == StripeEventStatus.IGNORED
    assert "still valid" in outcome.note
    assert Notification.objects.filter(customer=customer).count() == 1
