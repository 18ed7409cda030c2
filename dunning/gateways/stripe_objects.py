"""Reading Stripe objects (as plain dicts) into the gateway's dataclasses. Pure: no SDK, no database.

Kept apart from ``dunning.gateways.stripe`` (the one module that imports the SDK) so that webhook payloads,
API answers and tests all go through the same mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dunning.gateways.base import ChargeOutcome, ChargeResult, PaymentMethodDetails

PROCESSOR = "stripe"
# Stripe's ways of saying "the customer must authenticate this payment" (3-D Secure, SCA): they all send
# the case down the authentication path, never to an off-session retry.
AUTHENTICATION_CODES: frozenset[str] = frozenset(
    {
        "authentication_required",
        "requires_action",
        "invoice_payment_intent_requires_action",
        "payment_intent_authentication_failure",
    }
)
AUTHENTICATION_REQUIRED = "authentication_required"


def decline_code_of(code: str | None, decline_code: str | None) -> str:
    """Our decline code for a Stripe error: ``decline_code``, else ``code``; authentication codes unified."""
    if (code or "") in AUTHENTICATION_CODES or (decline_code or "") in AUTHENTICATION_CODES:
        return AUTHENTICATION_REQUIRED
    return decline_code or code or "generic_decline"


def declined(code: str, *, reference: str, message: str = "") -> ChargeResult:
    return ChargeResult(
        outcome=ChargeOutcome.DECLINED,
        gateway_reference=reference,
        decline_processor=PROCESSOR,
        decline_code=code,
        message=message,
    )


def expandable_id(value: Any) -> str:
    """An expandable field holds an id or the expanded object."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def result_from_payment_intent(intent: Mapping[str, Any]) -> ChargeResult:
    """What a PaymentIntent says about the charge it made (or refused)."""
    status = intent.get("status")
    reference = expandable_id(intent.get("latest_charge")) or str(intent.get("id") or "")
    if status == "succeeded":
        return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, gateway_reference=reference)
    if status in ("processing", "requires_capture", "requires_confirmation"):
        return ChargeResult(
            outcome=ChargeOutcome.UNKNOWN,
            gateway_reference=reference,
            message=f"Stripe payment {intent.get('id')} is {status}",
        )
    if status == "requires_action":
        return declined(
            AUTHENTICATION_REQUIRED,
            reference=str(intent.get("id") or ""),
            message="The bank asks the customer to authenticate this payment.",
        )
    error = intent.get("last_payment_error") or {}
    if status == "canceled" and not error:
        return declined("generic_decline", reference=reference, message="The payment was canceled at Stripe.")
    return declined(
        decline_code_of(error.get("code"), error.get("decline_code")),
        reference=expandable_id(error.get("charge")) or str(intent.get("id") or ""),
        message=str(error.get("message") or ""),
    )


def method_details(method: Mapping[str, Any]) -> PaymentMethodDetails:
    """A PaymentMethod (or a legacy card/source) as the details we may store: never the number."""
    kind = str(method.get("type") or method.get("object") or "card")
    if kind == "card" and "card" not in method:
        card: Mapping[str, Any] = method  # a legacy Card object carries its fields at the top level
    else:
        card = method.get(kind) or {}
    if kind not in ("card", "sepa_debit", "us_bank_account"):
        kind = "card"
    brand = card.get("brand") or card.get("bank_name") or ""
    return PaymentMethodDetails(
        gateway_payment_method_id=str(method.get("id") or ""),
        type=kind,
        brand=str(brand).lower()[:30],
        last4=str(card.get("last4") or "")[:4],
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        funding=card_funding(card.get("funding")),
        country=country_code(card.get("country")),
    )


def card_funding(value: Any) -> str:
    """Stripe's card.funding (credit, debit, prepaid, unknown); anything else is unknown."""
    value = str(value or "").lower()
    return value if value in ("credit", "debit", "prepaid") else "unknown"


def country_code(value: Any) -> str:
    value = str(value or "").upper()
    return value if len(value) == 2 and value.isalpha() and value.isascii() else ""


def timestamp(value: Any) -> datetime | None:
    """Stripe's Unix timestamps as aware datetimes."""
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def customer_default_method_id(customer: Mapping[str, Any]) -> str:
    """The method Stripe charges for invoices: the invoice default, else the legacy default source."""
    settings = customer.get("invoice_settings") or {}
    return expandable_id(settings.get("default_payment_method")) or expandable_id(
        customer.get("default_source")
    )


def invoice_subscription_id(invoice: Mapping[str, Any]) -> str:
    """The invoice's subscription: ``parent.subscription_details`` (2025 API versions) or ``subscription``."""
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return expandable_id(details.get("subscription")) or expandable_id(invoice.get("subscription"))
