"""The portal with the Stripe gateway, over localstripe: Checkout in setup mode, there and back, and the
open invoice charged once on the new card."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from django.test import Client

from customers.models import InvoiceStatus
from dunning.models import AttemptSource, CaseState, DunningCase, PaymentAttempt
from dunning.portal.tokens import portal_link_for
from tests.support import stripe_account as cards
from tests.support.stripe_account import StripeAccount, deliver

pytestmark = pytest.mark.django_db


def test_a_customer_replaces_the_card_on_stripes_page_and_the_invoice_is_paid_once(
    stripe_account: StripeAccount, client: Client, settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_BASE_URL = "http://testserver"
    # A Stripe customer whose invoice failed, known here through the webhook.
    stripe_account.failed_invoice(card=cards.DECLINE_AFTER_ATTACH)
    for event in stripe_account.events():
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, event).status_code == 200
    case = DunningCase.objects.select_related("invoice", "customer").get()
    link = portal_link_for(customer_id=case.customer_id, source="email", invoice_id=case.invoice_id)
    page = urlparse(link).path
    assert client.get(page).status_code == 200

    # "Update payment method" sends the customer to Stripe's hosted page.
    started = client.post(page + "card/")
    assert started.status_code == 303
    hosted = started["Location"]
    assert hosted.startswith(stripe_account.server.base_url)
    session_id = hosted.rstrip("/").rsplit("/", 1)[-1]
    # They enter a good card there; Stripe sends them back to the return page.
    stripe_account.server.complete_checkout(session_id, cards.GOOD_CARD)
    assert client.get("/portal/setup/return/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post("/portal/setup/complete/")
    assert done.status_code == 303

    case.refresh_from_db()
    case.invoice.refresh_from_db()
    assert case.invoice.status == InvoiceStatus.PAID
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, "email_portal")
    ours = PaymentAttempt.objects.filter(invoice=case.invoice).exclude(source=AttemptSource.INITIAL)
    assert [attempt.status for attempt in ours] == ["succeeded"]
    # The new card is the default at Stripe too, so the next renewal uses it.
    customer = stripe_account.sdk.v1.customers.retrieve(case.customer.gateway_customer_id)
    assert (
        customer.invoice_settings.default_payment_method
        == case.customer.payment_methods.get(is_default=True).gateway_payment_method_id
    )
    # Stripe's own follow-up events (new card attached, default changed, invoice paid) change nothing more.
    for event in stripe_account.events():
        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, event)
    assert ours.count() == 1
