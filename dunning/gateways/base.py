"""The payment gateway interface: small frozen dataclasses in and out.

Every implementation (simulated, Stripe, or a dotted path in ``PAYMENT_GATEWAY``) turns a
:class:`ChargeRequest` into a :class:`ChargeResult`, or raises :class:`GatewayError` when it cannot tell.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# Declines we make ourselves, before or instead of the processor (a refusal, a missing record).
INTERNAL_PROCESSOR = "internal"


class ChargeOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    # The request reached the gateway but we cannot tell whether money moved (timeout, 5xx after send).
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    amount_minor: int
    currency: str
    customer_ref: str
    payment_method_ref: str
    invoice_number: str
    # Set when the gateway itself issued the invoice (Stripe): pay that invoice instead of a new charge.
    gateway_invoice_ref: str = ""
    off_session: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Charge the customer's current default at the gateway (read at charge time) rather than
    # ``payment_method_ref``, our copy, which a missed webhook may have left behind. Gateways without a
    # customer store of their own charge ``payment_method_ref``.
    use_gateway_default: bool = False
    # Methods that must never be charged again (a hard or fraud decline): refused before anything is sent,
    # even when the gateway's current default turns out to be one of them.
    blocked_payment_method_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChargeResult:
    outcome: ChargeOutcome
    gateway_reference: str = ""
    # Normalised decline: the processor family ("stripe" for card codes, "ach" for returns) and its code.
    decline_processor: str = ""
    decline_code: str = ""
    message: str = ""
    # The method the gateway actually charged, when it chose it (``use_gateway_default``): our copy is
    # synced from it.
    payment_method: PaymentMethodDetails | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == ChargeOutcome.SUCCEEDED

    @property
    def processed(self) -> bool:
        """The processor itself answered: money moved, or the bank declined. Refusals made before anything
        reached it (``decline_processor == "internal"``) are not processed charges."""
        return self.outcome != ChargeOutcome.UNKNOWN and self.decline_processor != INTERNAL_PROCESSOR


@dataclass(frozen=True)
class TruthQuery:
    """What we know about an attempt whose outcome we never learnt."""

    idempotency_key: str
    gateway_reference: str = ""
    gateway_invoice_ref: str = ""
    amount_minor: int = 0
    currency: str = ""
    # Where to look when the gateway never told us a reference: the customer charged, and when the attempt
    # started (a gateway lists that customer's payments since then and matches the idempotency key).
    customer_ref: str = ""
    started_at: datetime | None = None


@dataclass(frozen=True)
class PaymentMethodDetails:
    """A payment method the gateway holds for a customer (never the card number: only what we may store)."""

    gateway_payment_method_id: str
    type: str = "card"
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None
    funding: str = "unknown"  # credit, debit, prepaid or unknown
    country: str = ""  # the issuer's country, ISO 3166 two letters


@dataclass(frozen=True)
class SetupSession:
    """A hosted page where the customer enters a new payment method; card data never touches our server."""

    url: str
    reference: str


@dataclass(frozen=True)
class RefundRequest:
    """Give back (part of) a charge. The key makes a repeated click refund once."""

    idempotency_key: str
    gateway_reference: str
    amount_minor: int
    currency: str
    reason: str = "duplicate"


@dataclass(frozen=True)
class RefundResult:
    reference: str
    amount_minor: int


class GatewayError(Exception):
    """The gateway could not give an answer.

    ``retryable`` errors (network, timeout, 5xx, rate limit) leave the outcome unknown: the attempt is
    reconciled later with :meth:`PaymentGateway.get_truth`. Permanent errors (bad request, auth, missing
    payment method) mean nothing was charged.
    """

    def __init__(self, message: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class PaymentGateway(abc.ABC):
    name: str = "abstract"

    @abc.abstractmethod
    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge once. Calling again with the same idempotency key must not charge again."""

    @abc.abstractmethod
    def get_truth(self, query: TruthQuery) -> ChargeResult | None:
        """What really happened to an attempt; None when the gateway has no record of it (nothing charged)."""

    def start_payment_method_update(
        self, *, customer_ref: str, return_url: str, cancel_url: str, metadata: Mapping[str, str]
    ) -> SetupSession | None:
        """Open a hosted page for a new payment method (Stripe Checkout in setup mode, for example).

        None means the gateway has no hosted page, and the portal shows its own form instead (the simulated
        gateway's test-card form).
        """
        return None

    def complete_payment_method_update(self, *, reference: str) -> PaymentMethodDetails | None:
        """After the customer came back from the hosted page: the method they confirmed, or None (abandoned)."""
        return None

    def set_default_payment_method(self, *, customer_ref: str, payment_method_ref: str) -> None:  # noqa: B027
        """Make the method the customer's default at the gateway (and on their subscriptions)."""

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund a charge (a double payment). Gateways that cannot refund say so."""
        raise GatewayError(
            f"the {self.name} gateway cannot refund charges", retryable=False, code="unsupported"
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called when a tick is done with the gateway."""
