"""The patches that make localstripe behave like Stripe where dunning depends on it (items 1-8 of the
list in ``tests/support/localstripe_server.py``). Imported only by that server process, before
localstripe's app is built. localstripe is GPL-3.0-or-later and never imported by the application.
"""

from __future__ import annotations

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

COUNTERS = {"invoice_number": 0}
# The server's own address, for the hosted-page links it makes (set when it starts).
BASE_URL = ""


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


def api_finalize(id: str, **kwargs: Any) -> Any:
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


def api_pay(id: str, off_session: Any = None, payment_method: Any = None, **kwargs: Any) -> Any:
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


def api_void(id: str, **kwargs: Any) -> Any:
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


def api_mark_uncollectible(id: str, **kwargs: Any) -> Any:
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


def api_invoice_payments(invoice: Any = None, limit: Any = None, **kwargs: Any) -> Any:
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


def api_attach(id: str, customer: Any = None, **kwargs: Any) -> Any:
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
