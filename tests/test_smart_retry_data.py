"""Where smart timing's data comes from: card funding and issuer country from Stripe, the simulated
gateway and the portal; a Stripe customer's country from its address."""

from __future__ import annotations

import pytest

from customers.actors import Actor
from dunning.gateways.simulated import SimulatedGateway
from dunning.gateways.stripe_objects import method_details
from dunning.services.stripe_sync.records import stripe_customer_upsert, stripe_payment_method_record

STRIPE_CARD = {
    "id": "pm_1",
    "type": "card",
    "card": {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 1,
        "exp_year": 2030,
        "funding": "debit",
        "country": "gb",
    },
}


def test_stripe_card_funding_and_country_are_read_and_anything_odd_is_unknown() -> None:
    details = method_details(STRIPE_CARD)
    assert (details.funding, details.country) == ("debit", "GB")
    odd = method_details(
        {**STRIPE_CARD, "card": {**STRIPE_CARD["card"], "funding": "charge", "country": "G\u0000"}}
    )
    assert (odd.funding, odd.country) == ("unknown", "")


def test_simulated_test_cards_have_stripes_funding() -> None:
    gateway = SimulatedGateway(ledger="memory", rules=[])
    debit = gateway.tokenize_test_card(number="4000056655665556", exp_month=1, exp_year=2031)
    prepaid = gateway.tokenize_test_card(number="5105105105105100", exp_month=1, exp_year=2031)
    credit = gateway.tokenize_test_card(number="4242424242424242", exp_month=1, exp_year=2031)
    assert [debit.funding, prepaid.funding, credit.funding] == ["debit", "prepaid", "credit"]


@pytest.mark.django_db
def test_a_stripe_customer_gets_its_address_country_and_its_card_the_funding() -> None:
    actor = Actor.system("test")
    customer = stripe_customer_upsert(
        data={"id": "cus_1", "email": "a@example.com", "address": {"country": "de"}}, actor=actor
    )
    assert customer.country == "DE"
    method, changed = stripe_payment_method_record(
        customer=customer, details=method_details(STRIPE_CARD), make_default=True, actor=actor
    )
    assert changed and (method.funding, method.country) == ("debit", "GB")
    # Funding changing on Stripe's side (a reissued card) is a change worth recording.
    reissued = {**STRIPE_CARD, "card": {**STRIPE_CARD["card"], "funding": "credit"}}
    method, changed = stripe_payment_method_record(
        customer=customer, details=method_details(reissued), make_default=True, actor=actor
    )
    method.refresh_from_db()
    assert changed and method.funding == "credit"
