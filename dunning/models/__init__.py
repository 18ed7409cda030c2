"""Dunning models, split by concern; import them from here."""

from dunning.models.attempts import (
    IN_FLIGHT_STATUSES,
    SETTLED_STATUSES,
    AttemptSource,
    AttemptStatus,
    PaymentAttempt,
    SimulatedCharge,
    SimulatedGatewayRule,
    attempt_idempotency_key,
)
from dunning.models.cases import CaseEvent, CaseEventKind, CaseState, DunningCase, RecoveryChannel
from dunning.models.declines import RETRYABLE_CATEGORIES, DeclineCategory, DeclineCode
from dunning.models.policies import (
    ACCESS_ENDING_ACTIONS,
    COMMUNICATION_ACTIONS,
    INVOICE_ENDING_ACTIONS,
    DunningPolicy,
    PolicyStep,
    PolicyVersion,
    RetryTiming,
    StepAction,
)
from dunning.models.portal import INITIAL_TOKEN_VERSION, PortalAccess
from dunning.models.safety import (
    CircuitState,
    DoublePayment,
    DoublePaymentReason,
    DoublePaymentStatus,
    GatewayCircuit,
)
from dunning.models.stripe import StripeEvent, StripeEventSource, StripeEventStatus
from dunning.models.timing import RetryTimingModel

__all__ = [
    "ACCESS_ENDING_ACTIONS",
    "COMMUNICATION_ACTIONS",
    "INITIAL_TOKEN_VERSION",
    "IN_FLIGHT_STATUSES",
    "INVOICE_ENDING_ACTIONS",
    "RETRYABLE_CATEGORIES",
    "SETTLED_STATUSES",
    "CircuitState",
    "DoublePayment",
    "DoublePaymentReason",
    "DoublePaymentStatus",
    "GatewayCircuit",
    "AttemptSource",
    "AttemptStatus",
    "CaseEvent",
    "CaseEventKind",
    "CaseState",
    "DeclineCategory",
    "DeclineCode",
    "DunningCase",
    "DunningPolicy",
    "PaymentAttempt",
    "PolicyStep",
    "PolicyVersion",
    "PortalAccess",
    "RecoveryChannel",
    "RetryTiming",
    "RetryTimingModel",
    "SimulatedCharge",
    "SimulatedGatewayRule",
    "StepAction",
    "StripeEvent",
    "StripeEventSource",
    "StripeEventStatus",
    "attempt_idempotency_key",
]
