"""Checkout Sessions in setup mode, subscription defaults and the test controls (items 9-11 of the list in
``tests/support/localstripe_server.py``), added to localstripe in the test server process only."""

from __future__ import annotations

import time
from typing import Any

from localstripe import resources as r
from localstripe.errors import UserError

from tests.support import localstripe_patches as patches
from tests.support.localstripe_patches import RawObject, emit


# --- 9. Checkout Sessions (setup mode) ----------------------------------------------------------------
class CheckoutSession(r.StripeObject):
    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(
        self,
        mode: Any = None,
        customer: Any = None,
        success_url: Any = None,
        cancel_url: Any = None,
        metadata: Any = None,
        currency: Any = None,
        payment_method_types: Any = None,
        client_reference_id: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        if mode != "setup":
            raise UserError(400, "Only mode=setup is implemented here", {"param": "mode"})
        if not isinstance(success_url, str) or not isinstance(customer, str):
            raise UserError(400, "customer and success_url are required")
        r.Customer._api_retrieve(customer)
        setup_intent = r.SetupIntent(customer=customer, metadata=metadata)
        super().__init__()
        self.mode = mode
        self.customer = customer
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.metadata = metadata or {}
        self.currency = currency
        self.client_reference_id = client_reference_id
        self.payment_method_types = payment_method_types or ["card"]
        self.setup_intent = setup_intent.id
        self.status = "open"
        self.url = f"{patches.BASE_URL}/_checkout/{self.id}"
        self.expires_at = int(time.time()) + 24 * 3600


def api_complete_checkout(
    id: str, number: Any = None, exp_month: Any = 12, exp_year: Any = 2030, **kw: Any
) -> Any:
    session = CheckoutSession._api_retrieve(id)
    if session.status != "open":
        raise UserError(400, f"This session is {session.status}")
    method = r.PaymentMethod(
        type="card", card={"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": "123"}
    )
    setup_intent = r.SetupIntent._api_retrieve(session.setup_intent)
    setup_intent._attach_pm(method)
    if setup_intent.status != "succeeded":
        raise UserError(400, "The card needs authentication: not simulated here")
    r.PaymentMethod._api_attach(method.id, customer=session.customer)
    session.status = "complete"
    emit("setup_intent.succeeded", setup_intent)
    emit("checkout.session.completed", session)
    return session


# --- 10. default_payment_method on subscriptions ---------------------------------------------------
def _subscription_update(self: Any, default_payment_method: Any = None, **data: Any) -> None:
    if default_payment_method is not None:
        r.PaymentMethod._api_retrieve(default_payment_method)
        self.default_payment_method = default_payment_method
    if data:
        _original_subscription_update(self, **data)


_original_subscription_update = r.Subscription._update
r.Subscription._update = _subscription_update
r.Subscription.default_payment_method = None


# --- 11. test controls ------------------------------------------------------------------------------
def api_set_invoice(id: str, next_payment_attempt: Any = None, **kwargs: Any) -> Any:
    invoice = r.Invoice._api_retrieve(id)
    value = r.try_convert_to_int(next_payment_attempt)
    invoice._next_payment_attempt = value if isinstance(value, int) and value > 0 else None
    return invoice


def api_card_updater(id: str, exp_month: Any = None, exp_year: Any = None, **kwargs: Any) -> Any:
    method = r.PaymentMethod._api_retrieve(id)
    previous = {"card": dict(method.card)}
    method.card["exp_month"] = r.try_convert_to_int(exp_month)
    method.card["exp_year"] = r.try_convert_to_int(exp_year)
    emit("payment_method.automatically_updated", method, previous)
    return method


def api_emit(type: Any = None, object: Any = None, **kwargs: Any) -> Any:
    if not isinstance(type, str) or not isinstance(object, dict):
        raise UserError(400, "type and object are required")
    return emit(type, RawObject(object))
