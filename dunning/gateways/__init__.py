"""Gateway selection: ``PAYMENT_GATEWAY`` is ``simulated``, ``stripe`` or a dotted path to a class."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from dunning.gateways.base import (
    INTERNAL_PROCESSOR,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    GatewayError,
    PaymentGateway,
    PaymentMethodDetails,
    RefundRequest,
    RefundResult,
    SetupSession,
    TruthQuery,
)

BUILTIN_GATEWAYS = {
    "simulated": "dunning.gateways.simulated.SimulatedGateway",
    "stripe": "dunning.gateways.stripe.StripeGateway",
}


def get_gateway() -> PaymentGateway:
    """A fresh gateway instance as configured. Callers close it when done."""
    path = BUILTIN_GATEWAYS.get(settings.PAYMENT_GATEWAY, settings.PAYMENT_GATEWAY)
    gateway_class = import_string(path)
    if not (isinstance(gateway_class, type) and issubclass(gateway_class, PaymentGateway)):
        raise TypeError(f"PAYMENT_GATEWAY {path!r} is not a PaymentGateway subclass")
    if gateway_class.__name__ == "SimulatedGateway":
        return gateway_class(**settings.SIMULATED_GATEWAY)
    return gateway_class()


__all__ = [
    "INTERNAL_PROCESSOR",
    "ChargeOutcome",
    "ChargeRequest",
    "ChargeResult",
    "GatewayError",
    "PaymentGateway",
    "PaymentMethodDetails",
    "RefundRequest",
    "RefundResult",
    "SetupSession",
    "TruthQuery",
    "get_gateway",
]
