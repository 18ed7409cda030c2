"""End to end over localstripe: Stripe's events in through the webhook, the tick charging through the
Stripe gateway, a new card recovering the invoice at once, and each owner of retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from customers.actors import Actor
from customers.models import InvoiceStatus
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    CaseState,
    DeclineCategory,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
    StripeEvent,
    StripeEventStatus,
)
from dunning.services.staff import case_retry_now
from dunning.services.tick import run_tick
from tests.support import stripe_account as cards
from tests.support.stripe_account import StripeAccount, deliver

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]


class Webhooks:
    """Stripe's side of the webhook: delivers every event not delivered yet, oldest first, signed."""

    def __init__(self, account: StripeAccount, client: Client, capture: Any) -> None:
        self.account, self.client, self.capture = account, client, capture
        self.sent: set[str] = set()

    def deliver_new(self) -> list[StripeEvent]:
        rows = []
        for event in self.account.events():
            if event["id"] in self.sent:
                continue
            self.sent.add(event["id"])
            with self.capture(execute=True):
                assert deliver(self.client, event).status_code == 200
            rows.append(StripeEvent.objects.get(event_id=event["id"]))
        failed = [(row.type, row.error) for row in rows if row.status == StripeEventStatus.FAILED]
        assert not failed, failed
        return rows


@pytest.fixture
def webhooks(stripe_account: StripeAccount, client: Client, django_capture_on_commit_callbacks) -> Webhooks:  # type: ignore[no-untyped-def]
    return Webhooks(stripe_account, client, django_capture_on_commit_callbacks)


def _stripe_payments(account: StripeAccount, invoice_id: str) -> list[str]:
    listing = account.sdk.v1.invoice_payments.list(params={"invoice": invoice_id, "limit": 100})
    return [payment.status for payment in listing.data]


def test_declined_then_retried_then_recovered_by_a_new_card(
    stripe_account: StripeAccount, webhooks: Webhooks
) -> None:
    # 1. A card that attached fine is declined when Stripe collects the invoice.
    customer, _, invoice = stripe_account.failed_invoice(card=cards.DECLINE_AFTER_ATTACH)
    # 2. The webhook opens the case (customer, card and invoice copied from Stripe).
    handled = {row.type: row.status for row in webhooks.deliver_new()}
    assert handled["invoice.payment_failed"] == StripeEventStatus.PROCESSED
    case = DunningCase.objects.get()
    assert case.invoice.gateway_invoice_id == invoice.id
    opened = case.opened_at

    # 3. The tick retries on day 1 through the Stripe gateway (paying the Stripe invoice) and fails soft.
    summary = run_tick(now=opened + timedelta(days=2))
    assert summary.counts["retry.failed"] == 1, summary.lines()
    retry = PaymentAttempt.objects.get(source=AttemptSource.RETRY)
    assert (retry.gateway, retry.decline_code, retry.decline_category) == (
        "stripe",
        "generic_decline",
        DeclineCategory.SOFT,
    )
    case.refresh_from_db()
    assert (case.state, case.retry_count, case.decline_category) == (CaseState.OPEN, 1, DeclineCategory.SOFT)
    # Stripe reports our own failed attempt back: recognised by its charge, not recorded twice.
    webhooks.deliver_new()
    assert PaymentAttempt.objects.count() == 2

    # 4. The customer adds a new card as the default: the webhook stores it and retries at once.
    new_card = stripe_account.card(customer.id, cards.GOOD_CARD)
    rows = webhooks.deliver_new()
    assert [row.result for row in rows if row.type == "payment_method.attached"][0].startswith("stored")
    recovery = PaymentAttempt.objects.get(source=AttemptSource.CARD_UPDATED)
    assert recovery.status == AttemptStatus.SUCCEEDED
    assert recovery.payment_method.gateway_payment_method_id == new_card.id
    case.refresh_from_db()
    assert (case.state, case.recovery_channel, case.recovered_amount_minor) == (
        CaseState.RECOVERED,
        RecoveryChannel.CARD_UPDATED,
        4900,
    )
    assert case.invoice.status == InvoiceStatus.PAID
    assert stripe_account.sdk.v1.invoices.retrieve(invoice.id).status == "paid"
    assert _stripe_payments(stripe_account, invoice.id).count("paid") == 1
    # Stripe's invoice.paid for our own payment changes nothing more.
    webhooks.deliver_new()

    # 5. Later ticks do nothing: no charge, no step, no message.
    events_before = case.events.count()
    for days in (3, 5, 9, 15, 30):
        run_tick(now=opened + timedelta(days=days))
    assert PaymentAttempt.objects.count() == 3
    assert case.events.count() == events_before
    assert _stripe_payments(stripe_account, invoice.id).count("paid") == 1


def test_with_dunning_owning_retries_an_invoice_stripe_still_retries_is_not_charged(
    stripe_account: StripeAccount, webhooks: Webhooks
) -> None:
    _, _, invoice = stripe_account.failed_invoice()
    webhooks.deliver_new()
    case = DunningCase.objects.get()
    # Smart Retries were left on in Stripe: another attempt is planned there.
    stripe_account.server.schedule_smart_retry(
        invoice.id, at=int((case.opened_at + timedelta(days=3)).timestamp())
    )
    payments_before = len(_stripe_payments(stripe_account, invoice.id))
    run_tick(now=case.opened_at + timedelta(days=2))
    retry = PaymentAttempt.objects.get(source=AttemptSource.RETRY)
    assert (retry.status, retry.decline_processor, retry.decline_code) == (
        AttemptStatus.FAILED,
        "internal",
        "gateway_retrying",
    )
    assert "Smart Retries" in retry.message
    assert len(_stripe_payments(stripe_account, invoice.id)) == payments_before  # nothing charged


def test_with_stripe_owning_retries_we_only_communicate_and_follow_stripe(
    stripe_account: StripeAccount, webhooks: Webhooks, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_RETRY_OWNER = "stripe"
    customer, _, invoice = stripe_account.failed_invoice()
    webhooks.deliver_new()
    case = DunningCase.objects.get()

    run_tick(now=case.opened_at + timedelta(days=2))
    assert not PaymentAttempt.objects.filter(source=AttemptSource.RETRY).exists()
    skipped = case.events.filter(kind=CaseEventKind.STEP_SKIPPED).values_list("reason", flat=True)
    assert any("Smart Retries" in reason for reason in skipped)
    assert case.events.filter(kind=CaseEventKind.STEP_DONE, reason="email").exists()  # still communicates
    with pytest.raises(ValidationError, match="STRIPE_RETRY_OWNER=stripe"):
        case_retry_now(case=case, actor=Actor.system("staff"))

    # A new card: stored, the case is told, but Stripe (not us) retries.
    stripe_account.card(customer.id, cards.GOOD_CARD)
    webhooks.deliver_new()
    assert not PaymentAttempt.objects.filter(source=AttemptSource.CARD_UPDATED).exists()
    # Stripe's Smart Retry succeeds: we follow its outcome.
    assert stripe_account.pay_invoice(invoice.id) == "paid"
    webhooks.deliver_new()
    case.refresh_from_db()
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, RecoveryChannel.PAID_OUTSIDE)


def test_a_retry_pays_the_stripe_invoice_with_the_default_stripe_holds_now(
    stripe_account: StripeAccount, webhooks: Webhooks
) -> None:
    """The customer changed their default card at Stripe and we missed the webhook: the retry pays the
    invoice with that card, not with our stale copy of the declining one."""
    customer, _, invoice = stripe_account.failed_invoice(card=cards.DECLINE_AFTER_ATTACH)
    webhooks.deliver_new()
    case = DunningCase.objects.get()
    new_card = stripe_account.card(customer.id, cards.GOOD_CARD)
    summary = run_tick(now=case.opened_at + timedelta(days=2))
    assert summary.counts["retry.succeeded"] == 1, summary.lines()
    retry = PaymentAttempt.objects.get(source=AttemptSource.RETRY)
    assert retry.payment_method.gateway_payment_method_id == new_card.id
    assert retry.payment_method.is_default
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert stripe_account.sdk.v1.invoices.retrieve(invoice.id).status == "paid"
