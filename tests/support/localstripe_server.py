"""localstripe, patched to behave more like Stripe for the dunning tests, run as its own process.

localstripe (PyPI, GPL-3.0-or-later) is only ever started as a separate test server process by
``tests/support/localstripe.py``: neither product code nor the test process imports it. This module is the
program that process runs (``python -m tests.support.localstripe_server``). It applies the patches below
to localstripe's resources, then serves its aiohttp app on 127.0.0.1 and prints ``PORT <n>`` once it
listens (port 0 picks a free one).

Every patch, and why (README "Running against a local Stripe-compatible server" lists them too):

1. No disk state: localstripe pickles its whole store to /tmp/localstripe.pickle on every write (slow, and
   shared between concurrent runs on one machine). The store stays in memory.
2. Idempotency keys: Stripe replays the first answer to a repeated ``Idempotency-Key`` (header
   ``Idempotent-Replayed: true``) and refuses a reused key with other parameters (``idempotency_error``).
   localstripe ignored the header.
3. Decline codes: localstripe declines every test card with ``card_declined`` and no ``decline_code``, and
   declines most of them when they are *attached*. Here the documented test cards attach and are declined
   when *charged*, with Stripe's ``code`` and ``decline_code`` (:data:`CHARGE_DECLINES`): the situation
   dunning deals with (a card that was fine when saved). ``4000000000000002`` still fails when attached.
4. Off-session authentication: a 3-D Secure card confirmed ``off_session`` fails with
   ``authentication_required`` (HTTP 402), as Stripe does, instead of waiting in ``requires_action``.
5. One-off invoices: ``POST /v1/invoices`` from pending invoice items without a subscription,
   ``/finalize``, ``/mark_uncollectible``; ``/pay`` takes ``off_session`` and ``payment_method``, answers
   a decline with a 402 card error and emits ``invoice.payment_failed`` (or
   ``invoice.payment_action_required``); voiding an invoice that was never charged works; invoices get a
   ``number``, ``amount_remaining``, an ``attempt_count`` that counts payment attempts (from 0), and a
   ``next_payment_attempt`` that is null unless a test says Stripe scheduled a Smart Retry
   (``POST /_config/invoices/{id}``). ``invoice.paid`` is emitted with ``invoice.payment_succeeded``.
6. The pinned API version's invoice shape: invoices no longer carry ``payment_intent`` or ``charge``; their
   payments are listed by ``GET /v1/invoice_payments?invoice=…`` (API 2025-03-31 and later).
7. Lists: PaymentIntents by ``customer`` and ``created``, invoices by ``status`` and ``created``, customers
   by ``created``.
8. Events: ``payment_method.attached`` on attach, ``previous_attributes`` on ``customer.updated`` when the
   default payment method changes, ``invoice.voided``.
9. Checkout Sessions in setup mode (``/v1/checkout/sessions``), which localstripe lacks; a test completes
   the hosted page with ``POST /_config/checkout/sessions/{id}/complete`` (a card number).
10. ``default_payment_method`` on subscriptions.
11. Test controls under ``/_config/``: reset everything, inject faults (an error before or after a request
    runs, a delay), run the card account updater on a payment method, and emit any event type
    (``customer.source.expiring``, ``invoice.upcoming``…) with a given object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import socket
import sys
import time
from typing import Any

from localstripe import resources as r
from localstripe.errors import UserError

CHARGE_DECLINES: dict[str, tuple[str, str, str]] = {
    # card number: (error code, decline_code, message), as Stripe answers for its test cards.
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4242424242424241": ("incorrect_number", "incorrect_number", "Your card number is incorrect."),
    "4000000000006975": ("card_declined", "card_velocity_exceeded", "Your card was declined."),
    "4100000000000019": ("card_declined", "fraudulent", "Your card was declined."),
}
ATTACH_DECLINES = {"4000000000000002"}
THREE_DS_CARDS = {"4000002500003155", "4000002760003184", "4000008260003178", "4000000000003220"}

IDEMPOTENCY: dict[str, tuple[str, int, bytes]] = {}
FAULTS: list[dict[str, Any]] = []
COUNTERS = {"invoice_number": 0}


class CardError(UserError):
    def __init__(self, message: str, contents: dict[str, Any]) -> None:
        super().__init__(402, message, contents)
        self.body["error"]["type"] = "card_error"


class RawObject:
    """Lets an event carry a payload given as JSON (localstripe's events export a resource)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _export(self, expand: Any = None) -> dict[str, Any]:
        return self.data


def emit(event_type: str, obj: Any, previous: dict[str, Any] | None = None) -> r.Event:
    event = r.Event(event_type, obj)
    if previous:
        event.data["previous_attributes"] = previous
    r.schedule_webhook(event)
    return event


# --- 1. no disk state -------------------------------------------------------------------------------
r.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
r.Store.try_load_from_disk = lambda self: None  # type: ignore[method-assign]


# --- 3. decline codes -------------------------------------------------------------------------------
def _number(source: Any) -> str:
    return getattr(source, "_card_number", "")


def _charging_is_declined(self: Any) -> bool:
    if getattr(self, "type", "") == "sepa_debit":
        return self._sepa_debit_iban == "DE62370400440532013001"
    return _number(self) in CHARGE_DECLINES


def _attaching_is_declined(self: Any) -> bool:
    return _number(self) in ATTACH_DECLINES


def _requires_authentication(self: Any) -> bool:
    return _number(self) in THREE_DS_CARDS


for cls in (r.PaymentMethod, r.Card):
    cls._charging_is_declined = _charging_is_declined
    cls._attaching_is_declined = _attaching_is_declined
    cls._requires_authentication = _requires_authentication


def _set_auth_failure(self: Any) -> None:
    source = r.PaymentMethod._api_retrieve(self.payment_method)
    code, decline_code, message = CHARGE_DECLINES.get(
        _number(source), ("card_declined", "generic_decline", "Your card was declined.")
    )
    self.status = "failed"
    self.failure_code = code
    self.failure_message = message
    self.outcome = {
        "type": "issuer_declined",
        "reason": decline_code,
        "network_status": "declined_by_network",
    }
    self._decline_code = decline_code


def _charge_error(charge: Any) -> CardError:
    return CardError(
        charge.failure_message,
        {
            "code": charge.failure_code,
            "decline_code": getattr(charge, "_decline_code", "generic_decline"),
            "charge": charge.id,
            "payment_intent": {"id": charge.payment_intent, "object": "payment_intent"}
            if charge.payment_intent
            else None,
        },
    )


def _raise_failure(self: Any) -> None:
    raise _charge_error(self)


r.Charge._set_auth_failure = _set_auth_failure
r.Charge._raise_failure = _raise_failure
r.Charge.outcome = None
r.Charge._decline_code = None


def _last_payment_error(self: Any) -> dict[str, Any] | None:
    if self._authentication_failed or getattr(self, "_auth_required_error", False):
        return {
            "type": "card_error",
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "message": "Your card was declined. This transaction requires authentication.",
        }
    charge = self.latest_charge
    if charge is not None and charge.status == "failed":
        return {
            "type": "card_error",
            "charge": charge.id,
            "code": charge.failure_code,
            "decline_code": charge._decline_code,
            "message": charge.failure_message,
        }
    return None


r.PaymentIntent.last_payment_error = property(_last_payment_error)


# --- 4. off-session authentication -----------------------------------------------------------------
def _pi_create(
    cls: Any,
    confirm: Any = None,
    off_session: Any = None,
    automatic_payment_methods: Any = None,
    description: Any = None,
    **data: Any,
) -> Any:
    confirm = r.try_convert_to_bool(confirm)
    off_session = r.try_convert_to_bool(off_session)
    if off_session is not None and confirm is not True:
        raise UserError(400, "off_session requires confirm=true")
    if automatic_payment_methods is not None and not isinstance(automatic_payment_methods, dict):
        raise UserError(400, "automatic_payment_methods must be a hash")
    obj = cls(**data)
    obj.description = description
    obj._off_session = bool(off_session)
    if confirm:
        _confirm_payment_intent(obj, raise_errors=True)
    return obj


def _confirm_payment_intent(pi: Any, *, raise_errors: bool) -> None:
    """Confirm like Stripe: off-session 3-D Secure fails; a decline raises a 402 card error."""
    method = r.PaymentMethod._api_retrieve(pi.payment_method)
    pi._authentication_failed = False
    if method._requires_authentication():
        if getattr(pi, "_off_session", False):
            pi._auth_required_error = True
            pi.payment_method = None
            emit("payment_intent.payment_failed", pi)
            if raise_errors:
                raise CardError(
                    "Your card was declined. This transaction requires authentication.",
                    {
                        "code": "authentication_required",
                        "decline_code": "authentication_required",
                        "payment_intent": {"id": pi.id, "object": "payment_intent"},
                    },
                )
            return
        pi.next_action = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
        return
    pi._create_charge(on_failure_now=(pi._report_failure if raise_errors else lambda: None))


r.PaymentIntent._api_create = classmethod(_pi_create)
r.PaymentIntent._off_session = False
r.PaymentIntent.description = None
r.PaymentIntent._auth_required_error = False


def _pi_status(self: Any) -> str:
    if getattr(self, "_auth_required_error", False) and not self._canceled:
        return "requires_payment_method"
    return _original_pi_status.fget(self)  # type: ignore[union-attr]


_original_pi_status = r.PaymentIntent.status
r.PaymentIntent.status = property(_pi_status)


# --- 5. one-off invoices, pay, finalize, void, uncollectible -----------------------------------------
def _invoice_create(
    cls: Any,
    customer: Any = None,
    subscription: Any = None,
    description: Any = None,
    metadata: Any = None,
    auto_advance: Any = None,
    collection_method: Any = None,
    pending_invoice_items_behavior: Any = None,
    **kwargs: Any,
) -> Any:
    if subscription is not None or kwargs:
        return _original_invoice_create(
            customer=customer,
            subscription=subscription,
            description=description,
            metadata=metadata,
            **kwargs,
        )
    pending = r.InvoiceItem._api_list_all(None, customer=customer, limit=99)._list
    if not pending:
        raise UserError(400, "Nothing to invoice for customer", {"code": "invoice_no_customer_line_items"})
    # The constructor takes the pending items and emits invoice.created. Nothing was attempted yet
    # (localstripe starts every invoice at attempt_count 1).
    invoice = cls(customer=customer, description=description, metadata=metadata)
    invoice.attempt_count = 0
    invoice.attempted = False
    return invoice


_original_invoice_create = r.Invoice._api_create
r.Invoice._api_create = classmethod(_invoice_create)


def _finalize(self: Any) -> None:
    assert self.status == "draft"
    self._draft = False
    self.customer_email = r.Customer._api_retrieve(self.customer).email
    self.status_transitions["finalized_at"] = int(time.time())
    COUNTERS["invoice_number"] += 1
    self._number = f"LS-{COUNTERS['invoice_number']:05d}"


r.Invoice._finalize = _finalize
r.Invoice._number = None
r.Invoice._next_payment_attempt = None
r.Invoice._payment_intents = ()


def _api_finalize(id: str, **kwargs: Any) -> Any:
    invoice = r.Invoice._api_retrieve(id)
    if invoice.status != "draft":
        raise UserError(400, "This invoice is already finalized", {"code": "invoice_not_editable"})
    invoice._finalize()
    emit("invoice.finalized", invoice)
    return invoice


def _default_method(invoice: Any) -> Any:
    if invoice.subscription:
        sub = r.Subscription._api_retrieve(invoice.subscription)
        if getattr(sub, "default_payment_method", None):
            return r.PaymentMethod._api_retrieve(sub.default_payment_method)
    return r.Customer._api_retrieve(invoice.customer)._get_default_payment_method_or_source()


def _api_pay(id: str, off_session: Any = None, payment_method: Any = None, **kwargs: Any) -> Any:
    invoice = r.Invoice._api_retrieve(id)
    if invoice.status == "paid":
        raise UserError(400, "Invoice is already paid", {"code": "invoice_already_paid"})
    if invoice.status not in ("draft", "open"):
        raise UserError(400, f"You cannot pay an invoice that is {invoice.status}")
    if invoice.status == "draft":
        invoice._finalize()
    if invoice.total <= 0:
        invoice._on_payment_success()
        return invoice
    method = r.PaymentMethod._api_retrieve(payment_method) if payment_method else _default_method(invoice)
    if method is None:
        raise UserError(
            400,
            "This customer has no attached payment source or default payment method.",
            {"code": "invoice_no_payment_method_types"},
        )
    pi = r.PaymentIntent(
        amount=invoice.total, currency=invoice.currency, customer=invoice.customer, payment_method=method.id
    )
    pi.invoice = invoice.id
    pi._off_session = r.try_convert_to_bool(off_session) is True
    invoice.payment_intent = pi.id
    invoice._payment_intents = (*invoice._payment_intents, pi.id)
    invoice.attempt_count = len(invoice._payment_intents)
    invoice.attempted = True
    _confirm_payment_intent(pi, raise_errors=False)
    if pi.status == "succeeded":
        return invoice
    if pi._auth_required_error or pi.status == "requires_action":
        emit("invoice.payment_action_required", invoice)
        raise CardError(
            "This payment requires additional user action before it can be completed successfully.",
            {
                "code": "invoice_payment_intent_requires_action",
                "payment_intent": {"id": pi.id, "object": "payment_intent"},
            },
        )
    charge = pi.latest_charge
    if charge is not None and charge.status == "failed":
        emit("invoice.payment_failed", invoice)
        raise _charge_error(charge)
    return invoice


def _on_payment_success(self: Any) -> None:
    assert self.status == "paid"
    self.status_transitions["paid_at"] = int(time.time())
    self._next_payment_attempt = None
    emit("invoice.payment_succeeded", self)
    emit("invoice.paid", self)
    if self.subscription:
        r.Subscription._api_retrieve(self.subscription)._on_initial_payment_success(self)


r.Invoice._on_payment_success = _on_payment_success


def _api_void(id: str, **kwargs: Any) -> Any:
    invoice = r.Invoice._api_retrieve(id)
    if invoice.status not in ("draft", "open"):
        raise UserError(400, f"You cannot void an invoice that is {invoice.status}")
    if invoice.payment_intent:
        pi = r.PaymentIntent._api_retrieve(invoice.payment_intent)
        if pi.status in ("requires_payment_method", "requires_confirmation", "requires_action"):
            pi._canceled = True
    invoice._draft = False
    invoice._voided = True
    invoice._next_payment_attempt = None
    invoice.status_transitions["voided_at"] = int(time.time())
    emit("invoice.voided", invoice)
    return invoice


def _api_mark_uncollectible(id: str, **kwargs: Any) -> Any:
    invoice = r.Invoice._api_retrieve(id)
    if invoice.status != "open":
        raise UserError(400, f"You cannot mark an invoice that is {invoice.status} uncollectible")
    invoice._uncollectible = True
    invoice._next_payment_attempt = None
    invoice.status_transitions["marked_uncollectible_at"] = int(time.time())
    emit("invoice.marked_uncollectible", invoice)
    return invoice


r.Invoice._uncollectible = False


def _invoice_status(self: Any) -> str:
    status = _original_invoice_status.fget(self)  # type: ignore[union-attr]
    return "uncollectible" if status == "open" and self._uncollectible else status


_original_invoice_status = r.Invoice.status
r.Invoice.status = property(_invoice_status)
r.Invoice.next_payment_attempt = property(
    lambda self: self._next_payment_attempt if self.status == "open" else None
)


# --- 6. the pinned API version's invoice shape ------------------------------------------------------
def _invoice_export(self: Any, expand: Any = None) -> dict[str, Any]:
    data = _original_invoice_export(self, expand=expand)
    data.pop("payment_intent", None)
    data.pop("charge", None)
    data["number"] = self._number
    data["amount_remaining"] = data["amount_due"] - data["amount_paid"]
    data.setdefault("due_date", None)
    data["auto_advance"] = False
    return data


_original_invoice_export = r.Invoice._export
r.Invoice._export = _invoice_export


def _api_invoice_payments(invoice: Any = None, limit: Any = None, **kwargs: Any) -> Any:
    if not isinstance(invoice, str):
        raise UserError(400, "Missing required param: invoice.")
    found = r.Invoice._api_retrieve(invoice)
    payments = []
    for index, pi_id in enumerate(found._payment_intents):
        pi = r.PaymentIntent._api_retrieve(pi_id)
        status = {"succeeded": "paid", "canceled": "canceled"}.get(pi.status, "open")
        payments.append(
            RawObject(
                {
                    "id": f"inpay_{pi_id[3:]}",
                    "object": "invoice_payment",
                    "invoice": found.id,
                    "amount_paid": pi.amount if status == "paid" else None,
                    "amount_requested": pi.amount,
                    "currency": pi.currency,
                    "created": pi.created,
                    "is_default": index == len(found._payment_intents) - 1,
                    "livemode": False,
                    "payment": {"type": "payment_intent", "payment_intent": pi_id},
                    "status": status,
                }
            )
        )
    listing = r.List(f"/v1/invoice_payments?invoice={invoice}", limit=limit)
    listing._list = list(reversed(payments))
    return listing


# --- 7. list filters ---------------------------------------------------------------------------------
def _created_filter(items: list[Any], created: Any) -> list[Any]:
    if not created:
        return items
    if not isinstance(created, dict):
        created = {"eq": created}
    checks = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
        "eq": lambda a, b: a == b,
    }
    for op, value in created.items():
        items = [item for item in items if checks[op](item.created, int(value))]
    return items


def _list_newest_first(listing: Any) -> Any:
    # Stripe lists newest first; localstripe kept the store's insertion (creation) order.
    listing._list.reverse()
    return listing


def _pi_list(cls: Any, url: str, customer: Any = None, created: Any = None, **kwargs: Any) -> Any:
    listing = r.StripeObject._api_list_all.__func__(cls, url, **kwargs)
    if customer:
        listing._list = [pi for pi in listing._list if pi.customer == customer]
    listing._list = _created_filter(listing._list, created)
    return _list_newest_first(listing)


r.PaymentIntent._api_list_all = classmethod(_pi_list)


def _invoice_list(
    cls: Any,
    url: str,
    customer: Any = None,
    subscription: Any = None,
    status: Any = None,
    created: Any = None,
    **kwargs: Any,
) -> Any:
    listing = _original_invoice_list(url, customer=customer, subscription=subscription, **kwargs)
    if status:
        listing._list = [i for i in listing._list if i.status == status]
    # localstripe already sorts invoices newest first (by date).
    listing._list = _created_filter(listing._list, created)
    return listing


_original_invoice_list = r.Invoice._api_list_all
r.Invoice._api_list_all = classmethod(_invoice_list)


def _customer_list(cls: Any, url: str, created: Any = None, **kwargs: Any) -> Any:
    listing = _original_customer_list(url, **kwargs)
    listing._list = _created_filter(listing._list, created)
    return _list_newest_first(listing)


_original_customer_list = r.Customer._api_list_all
r.Customer._api_list_all = classmethod(_customer_list)


def _event_list(cls: Any, url: str, **kwargs: Any) -> Any:
    return _list_newest_first(_original_event_list(url, **kwargs))


_original_event_list = r.Event._api_list_all
r.Event._api_list_all = classmethod(_event_list)


# --- 8. events ---------------------------------------------------------------------------------------
def _pm_attach(cls: Any, id: str, customer: Any = None, **kwargs: Any) -> Any:
    method = _original_pm_attach(id, customer=customer, **kwargs)
    emit("payment_method.attached", method)
    return method


_original_pm_attach = r.PaymentMethod._api_attach
r.PaymentMethod._api_attach = classmethod(_pm_attach)


def _api_attach(id: str, customer: Any = None, **kwargs: Any) -> Any:
    return r.PaymentMethod._api_attach(id, customer=customer, **kwargs)


def _customer_update(cls: Any, id: str, **data: Any) -> Any:
    settings = data.get("invoice_settings")
    if isinstance(settings, dict) and settings.get("default_payment_method") == "":
        settings["default_payment_method"] = None
    before = dict(cls._api_retrieve(id).invoice_settings or {})
    customer = r.StripeObject._api_update.__func__(cls, id, **data)
    after = dict(customer.invoice_settings or {})
    previous = {"invoice_settings": before} if before != after else None
    emit("customer.updated", customer, previous)
    return customer


r.Customer._api_update = classmethod(_customer_update)


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
        self.url = f"{BASE_URL}/_checkout/{self.id}"
        self.expires_at = int(time.time()) + 24 * 3600


def _api_complete_checkout(
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
def _api_set_invoice(id: str, next_payment_attempt: Any = None, **kwargs: Any) -> Any:
    invoice = r.Invoice._api_retrieve(id)
    value = r.try_convert_to_int(next_payment_attempt)
    invoice._next_payment_attempt = value if isinstance(value, int) and value > 0 else None
    return invoice


def _api_card_updater(id: str, exp_month: Any = None, exp_year: Any = None, **kwargs: Any) -> Any:
    method = r.PaymentMethod._api_retrieve(id)
    previous = {"card": dict(method.card)}
    method.card["exp_month"] = r.try_convert_to_int(exp_month)
    method.card["exp_year"] = r.try_convert_to_int(exp_year)
    emit("payment_method.automatically_updated", method, previous)
    return method


def _api_emit(type: Any = None, object: Any = None, **kwargs: Any) -> Any:
    if not isinstance(type, str) or not isinstance(object, dict):
        raise UserError(400, "type and object are required")
    return emit(type, RawObject(object))


# --- the server ---------------------------------------------------------------------------------------
BASE_URL = ""
EXTRA_ROUTES = [
    ("POST", "/v1/payment_methods/{id}/attach", _api_attach),
    ("POST", "/v1/invoices/{id}/finalize", _api_finalize),
    ("POST", "/v1/invoices/{id}/pay", _api_pay),
    ("POST", "/v1/invoices/{id}/void", _api_void),
    ("POST", "/v1/invoices/{id}/mark_uncollectible", _api_mark_uncollectible),
    ("GET", "/v1/invoice_payments", _api_invoice_payments),
    ("POST", "/_config/invoices/{id}", _api_set_invoice),
    ("POST", "/_config/checkout/sessions/{id}/complete", _api_complete_checkout),
    ("POST", "/_config/payment_methods/{id}/automatic_update", _api_card_updater),
    ("POST", "/_config/events", _api_emit),
]


def _install_routes() -> Any:
    # localstripe's server module builds its routes at import time from ``extra_apis``: replace the
    # entries patched here first, so the routes call the new functions.
    replaced = {(method, url): func for method, url, func in EXTRA_ROUTES}
    r.extra_apis[:] = [(method, url, replaced.pop((method, url), func)) for method, url, func in r.extra_apis]
    r.extra_apis[:0] = [(method, url, func) for (method, url), func in replaced.items()]
    from localstripe import server

    for method, url, func in (
        ("POST", "/v1/checkout/sessions", server.api_create),
        ("GET", "/v1/checkout/sessions/{id}", server.api_retrieve),
    ):
        server.app.router.add_route(method, url, func(CheckoutSession, url))
    server.app.router.add_post("/_config/reset", _reset)
    server.app.router.add_post("/_config/faults", _add_fault)
    server.app.middlewares.insert(0, _faults_and_idempotency)
    return server


async def _reset(request: Any) -> Any:
    from aiohttp import web

    r.store.clear()
    IDEMPOTENCY.clear()
    FAULTS.clear()
    COUNTERS["invoice_number"] = 0
    return web.Response()


async def _add_fault(request: Any) -> Any:
    """{"method": "POST", "path": "/v1/payment_intents", "mode": "before"|"after"|"delay", "times": 1,
    "status": 500, "seconds": 2}: the next matching requests fail before running, fail after running (the
    client never learns the result), or answer late."""
    from aiohttp import web

    fault = await request.json()
    fault.setdefault("times", 1)
    fault.setdefault("status", 500)
    FAULTS.append(fault)
    return web.Response()


def _take_fault(method: str, path: str) -> dict[str, Any] | None:
    for fault in FAULTS:
        if fault.get("method", method) == method and path.startswith(fault["path"]) and fault["times"] > 0:
            fault["times"] -= 1
            return fault
    return None


def _json(status: int, body: dict[str, Any]) -> Any:
    from aiohttp import web

    return web.json_response(body, status=status)


def _fault_response(fault: dict[str, Any]) -> Any:
    return _json(
        fault["status"],
        {"error": {"type": "api_error", "message": "Injected server error (test fault)."}},
    )


def _middleware() -> Any:
    from aiohttp import web

    @web.middleware
    async def middleware(request: Any, handler: Any) -> Any:
        fault = None if request.path.startswith("/_config/") else _take_fault(request.method, request.path)
        if fault and fault["mode"] == "before":
            return _fault_response(fault)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key:
            body = await request.read()
            fingerprint = hashlib.sha256(request.path.encode() + b"\0" + body).hexdigest()
            stored = IDEMPOTENCY.get(key)
            if stored is not None:
                if stored[0] != fingerprint:
                    return _json(
                        400,
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with.",
                            }
                        },
                    )
                response = web.Response(status=stored[1], body=stored[2], content_type="application/json")
                response.headers["Idempotent-Replayed"] = "true"
                response.headers["Idempotency-Key"] = key
                return response
        response = await handler(request)
        # Stripe keeps the result of every request that started executing (errors included), not of
        # requests refused before they ran (bad parameters, conflicts).
        if key and response.status in (200, 402):
            IDEMPOTENCY[key] = (fingerprint, response.status, response.body)
        if fault and fault["mode"] == "after":
            return _fault_response(fault)
        if fault and fault["mode"] == "delay":
            await asyncio.sleep(float(fault.get("seconds", 2)))
        return response

    return middleware


_faults_and_idempotency = None


def main() -> None:
    global BASE_URL, _faults_and_idempotency
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    from aiohttp import web

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    BASE_URL = f"http://127.0.0.1:{port}"
    _faults_and_idempotency = _middleware()
    server = _install_routes()
    print(f"PORT {port}", flush=True)
    web.run_app(server.app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    sys.exit(main())
