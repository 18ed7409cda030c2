"""A Stripe test account on localstripe, arranged the way a merchant's billing system would (through the
official SDK), plus webhook deliveries signed with the SDK's own signature scheme.

Tests may import ``stripe`` to arrange data; product code never does (only ``dunning.gateways.stripe``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import stripe
from django.test import Client

from tests.support.localstripe import TEST_SECRET_KEY, LocalStripe

WEBHOOK_SECRET = "whsec_test_dunning_0123456789abcdef"
OLD_WEBHOOK_SECRET = "whsec_test_dunning_previous_secret"

GOOD_CARD = "4242424242424242"
DECLINE_AFTER_ATTACH = "4000000000000341"  # attaches, every charge declined (generic_decline)
INSUFFICIENT_FUNDS = "4000000000009995"
EXPIRED_CARD = "4000000000000069"
PROCESSING_ERROR = "4000000000000119"
FRAUDULENT = "4100000000000019"
NEEDS_AUTHENTICATION = "4000002500003155"


@dataclass
class StripeAccount:
    server: LocalStripe

    def __post_init__(self) -> None:
        self.sdk = stripe.StripeClient(
            TEST_SECRET_KEY, base_addresses={"api": self.server.base_url}, max_network_retries=0
        )

    # --- arranging the account ----------------------------------------------------------------------
    def customer(self, *, email: str = "billing@example.com", name: str = "Acme Ltd", **extra: Any) -> Any:
        return self.sdk.v1.customers.create(params={"email": email, "name": name, **extra})

    def card(
        self, customer_id: str, number: str = GOOD_CARD, *, default: bool = True, exp_year: int = 2030
    ) -> Any:
        method = self.sdk.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": exp_year, "cvc": "123"},
            }
        )
        method = self.sdk.v1.payment_methods.attach(method.id, params={"customer": customer_id})
        if default:
            self.sdk.v1.customers.update(
                customer_id, params={"invoice_settings": {"default_payment_method": method.id}}
            )
        return method

    def invoice(
        self, customer_id: str, *, amount: int = 4900, currency: str = "eur", finalize: bool = True
    ) -> Any:
        self.sdk.v1.invoice_items.create(
            params={
                "customer": customer_id,
                "amount": amount,
                "currency": currency,
                "description": "Team plan",
            }
        )
        invoice = self.sdk.v1.invoices.create(params={"customer": customer_id})
        return self.sdk.v1.invoices.finalize_invoice(invoice.id) if finalize else invoice

    def pay_invoice(self, invoice_id: str) -> str:
        """Stripe's own collection attempt (what Billing does at renewal): 'paid' or the decline code."""
        try:
            self.sdk.v1.invoices.pay(invoice_id, params={"off_session": True})
        except stripe.CardError as exc:
            return str(exc.error.decline_code if exc.error else exc.code)
        return "paid"

    def failed_invoice(self, *, card: str = DECLINE_AFTER_ATTACH, amount: int = 4900) -> tuple[Any, Any, Any]:
        """A customer whose card attached fine and whose invoice's first charge was declined."""
        customer = self.customer()
        method = self.card(customer.id, card)
        invoice = self.invoice(customer.id, amount=amount)
        self.pay_invoice(invoice.id)
        return customer, method, self.sdk.v1.invoices.retrieve(invoice.id)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return self.server.events(event_type)

    def last_event(self, event_type: str) -> dict[str, Any]:
        found = self.events(event_type)
        assert found, f"localstripe emitted no {event_type} event"
        return found[-1]


def sign(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header made with the SDK's own helper (HMAC-SHA256 of "<t>.<body>")."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)


def deliver(
    client: Client,
    event: dict[str, Any] | str,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
) -> Any:
    """POST an event to the inbox as Stripe does: the raw JSON body and its Stripe-Signature header."""
    payload = event if isinstance(event, str) else json.dumps(event)
    header = signature if signature is not None else sign(payload, secret=secret, timestamp=timestamp)
    return client.post(
        "/webhooks/stripe/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def make_event(
    event_type: str, obj: dict[str, Any], *, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An event in Stripe's shape, for types localstripe never emits."""
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": f"evt_test_{time.time_ns()}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2026-10-28.endive",
        "data": data,
    }
