"""A deterministic, table-driven gateway for local use, demos and tests.

Outcomes, in order of precedence:
1. a staff-edited :class:`~dunning.models.SimulatedGatewayRule` for the customer (a sequence of outcomes,
   latency and injected faults);
2. the payment method reference: ``pm_sim_decline_<code>`` declines with that code (any card or ACH code),
   otherwise its trailing digits are read as a test card, mirroring Stripe's test cards (see
   :data:`TEST_CARDS`: …4242 succeeds, …0002 generic decline, …9995 insufficient funds, …0069 expired…);
3. success.

Every call is recorded in a ledger keyed by idempotency key, so a repeated key returns the first answer
and never charges twice. The ledger lives in the database (``SimulatedCharge``; shared by every process)
or, for benchmarks, in memory.

Chaos for production-like runs (``chaos``, ``truth_failures``): a share of calls fails at random, as a
real network does: a timeout before the request arrives, a 5xx, or a timeout after the money moved; and a
share of truth queries fails. ``latency_ms`` delays each request before it reaches the processor, so a
slow call is also a late one.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from dunning.gateways.base import (
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    GatewayError,
    PaymentGateway,
    PaymentMethodDetails,
    RefundRequest,
    RefundResult,
    TruthQuery,
)

SUCCEEDED = "succeeded"

# Last four digits of Stripe's test cards -> decline code ("succeeded" for success).
TEST_CARDS: dict[str, str] = {
    "4242": SUCCEEDED,  # 4242 4242 4242 4242 Visa
    "4444": SUCCEEDED,  # 5555 5555 5555 4444 Mastercard
    "0005": SUCCEEDED,  # 3782 822463 10005 Amex
    "0002": "generic_decline",  # 4000 0000 0000 0002
    "9995": "insufficient_funds",  # 4000 0000 0000 9995
    "9987": "lost_card",  # 4000 0000 0000 9987
    "9979": "stolen_card",  # 4000 0000 0000 9979
    "0069": "expired_card",  # 4000 0000 0000 0069
    "0127": "incorrect_cvc",  # 4000 0000 0000 0127
    "0119": "processing_error",  # 4000 0000 0000 0119
    "4241": "incorrect_number",  # 4242 4242 4242 4241
    "6975": "card_velocity_exceeded",  # 4000 0000 0000 6975
    "0341": "generic_decline",  # 4000 0000 0000 0341: attaches, every charge fails
    "3155": "authentication_required",  # 4000 0025 0000 3155
    "0019": "fraudulent",  # 4100 0000 0000 0019
}
ACH_RETURN_CODE = re.compile(r"^R\d{2}$")
CHAOS_FAULTS = ("timeout", "server_error", "timeout_after_charge")
TRAILING_DIGITS = re.compile(r"(\d{4,})$")


@dataclass(frozen=True)
class _Rule:
    outcomes: tuple[str, ...]
    latency_ms: int
    fault: str


@dataclass(frozen=True)
class _LedgerEntry:
    reference: str
    succeeded: bool
    decline_code: str


def outcome_for_payment_method(payment_method_ref: str) -> str:
    """The decline code (or "succeeded") the test card in ``payment_method_ref`` stands for."""
    if payment_method_ref.startswith("pm_sim_decline_"):
        return payment_method_ref.removeprefix("pm_sim_decline_")
    match = TRAILING_DIGITS.search(payment_method_ref)
    if match:
        return TEST_CARDS.get(match.group(1)[-4:], SUCCEEDED)
    return SUCCEEDED


def _processor_for(code: str) -> str:
    return "ach" if ACH_RETURN_CODE.match(code) else "stripe"


class _MemoryLedger:
    """Process-wide, so several gateway instances in one process agree (as a real processor would)."""

    _entries: dict[str, _LedgerEntry] = {}
    _calls_per_customer: dict[str, int] = {}
    _lock = threading.Lock()

    def get(self, key: str) -> _LedgerEntry | None:
        return self._entries.get(key)

    def count_for_customer(self, customer: str) -> int:
        return self._calls_per_customer.get(customer, 0)

    _refunds: dict[str, tuple[str, int]] = {}

    def record(self, key: str, customer: str, entry: _LedgerEntry, request: ChargeRequest) -> _LedgerEntry:
        with self._lock:
            existing = self._entries.get(key)
            if existing is not None:
                return existing
            self._entries[key] = entry
            self._calls_per_customer[customer] = self._calls_per_customer.get(customer, 0) + 1
            return entry

    def refund(self, reference: str, amount_minor: int, refund_reference: str) -> tuple[str, int]:
        with self._lock:
            if not any(e.reference == reference and e.succeeded for e in self._entries.values()):
                raise GatewayError(f"no successful charge {reference}", retryable=False, code="no_charge")
            return self._refunds.setdefault(reference, (refund_reference, amount_minor))

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls._entries.clear()
            cls._calls_per_customer.clear()
            cls._refunds.clear()


class _DatabaseLedger:
    def get(self, key: str) -> _LedgerEntry | None:
        from dunning.models import SimulatedCharge

        row = SimulatedCharge.objects.filter(idempotency_key=key).values_list(
            "reference", "succeeded", "decline_code"
        )
        found = row.first()
        return _LedgerEntry(*found) if found else None

    def count_for_customer(self, customer: str) -> int:
        from dunning.models import SimulatedCharge

        return SimulatedCharge.objects.filter(customer_ref=customer).count()

    def record(self, key: str, customer: str, entry: _LedgerEntry, request: ChargeRequest) -> _LedgerEntry:
        from dunning.models import SimulatedCharge

        try:
            with transaction.atomic():
                SimulatedCharge.objects.create(
                    idempotency_key=key,
                    reference=entry.reference,
                    amount_minor=request.amount_minor,
                    currency=request.currency,
                    customer_ref=customer,
                    payment_method_ref=request.payment_method_ref,
                    invoice_ref=request.gateway_invoice_ref or request.invoice_number,
                    succeeded=entry.succeeded,
                    decline_code=entry.decline_code,
                )
        except IntegrityError:
            # Another process charged with this key at the same moment: its answer stands.
            existing = self.get(key)
            assert existing is not None
            return existing
        return entry

    def refund(self, reference: str, amount_minor: int, refund_reference: str) -> tuple[str, int]:
        from dunning.models import SimulatedCharge

        with transaction.atomic():
            charge = (
                SimulatedCharge.objects.select_for_update()
                .filter(reference=reference, succeeded=True)
                .first()
            )
            if charge is None:
                raise GatewayError(f"no successful charge {reference}", retryable=False, code="no_charge")
            if charge.refund_reference:  # refunded before: the same answer, never a second refund
                return charge.refund_reference, charge.refunded_minor
            if amount_minor > charge.amount_minor:
                raise GatewayError("refund larger than the charge", retryable=False, code="amount_too_large")
            charge.refund_reference, charge.refunded_minor = refund_reference, amount_minor
            charge.save(update_fields=["refund_reference", "refunded_minor"])
            return refund_reference, amount_minor


# Stripe's published test numbers for debit and prepaid cards; any other simulated card is credit.
SIMULATED_FUNDING: dict[str, str] = {
    "4000056655665556": "debit",
    "5200828282828210": "debit",
    "5105105105105100": "prepaid",
}


class SimulatedGateway(PaymentGateway):
    name = "simulated"

    def __init__(
        self,
        *,
        ledger: str = "database",
        latency_ms: int = 0,
        rules: Iterable[object] | None = None,
        chaos: float = 0.0,
        truth_failures: float = 0.0,
        seed: int | None = None,
    ):
        if ledger not in ("database", "memory"):
            raise ValueError("ledger must be 'database' or 'memory'")
        if not (0 <= chaos <= 1 and 0 <= truth_failures <= 1):
            raise ValueError("chaos and truth_failures are shares between 0 and 1")
        self.chaos, self.truth_failures = chaos, truth_failures
        self._random = random.Random(seed)
        self._ledger: _MemoryLedger | _DatabaseLedger = (
            _MemoryLedger() if ledger == "memory" else _DatabaseLedger()
        )
        self.latency_ms = latency_ms
        self._rules: dict[str, _Rule] | None = None if rules is None else self._index_rules(rules)
        self.calls: list[ChargeRequest] = []
        self._calls_lock = threading.Lock()

    @staticmethod
    def _index_rules(rules: Iterable[object]) -> dict[str, _Rule]:
        return {
            rule.customer_external_id: _Rule(  # type: ignore[attr-defined]
                tuple(rule.outcomes or ()),  # type: ignore[attr-defined]
                rule.latency_ms,  # type: ignore[attr-defined]
                rule.fault,  # type: ignore[attr-defined]
            )
            for rule in rules
        }

    def _rule_for(self, customer: str) -> _Rule | None:
        if self._rules is None:
            from dunning.models import SimulatedGatewayRule

            # Loaded once per gateway instance (one tick): rules are few and change rarely.
            self._rules = self._index_rules(SimulatedGatewayRule.objects.all())
        return self._rules.get(customer)

    def _decide(self, request: ChargeRequest, customer: str, rule: _Rule | None) -> str:
        if rule and rule.outcomes:
            index = min(self._ledger.count_for_customer(customer), len(rule.outcomes) - 1)
            return rule.outcomes[index]
        return outcome_for_payment_method(request.payment_method_ref)

    def charge(self, request: ChargeRequest) -> ChargeResult:
        with self._calls_lock:
            self.calls.append(request)
        if not request.payment_method_ref:
            # As a real processor: nothing to charge, and nothing charged.
            raise GatewayError("no payment method to charge", retryable=False, code="gateway_error")
        customer = request.metadata.get("customer") or request.customer_ref
        rule = self._rule_for(customer)
        latency = (rule.latency_ms if rule and rule.latency_ms else self.latency_ms) / 1000
        if latency:
            time.sleep(latency)
        if request.payment_method_ref in request.blocked_payment_method_refs:
            raise GatewayError(
                "this payment method was hard-declined before", retryable=False, code="payment_method_blocked"
            )
        fault = rule.fault if rule else self._chaos_fault()
        if fault == "timeout":
            raise GatewayError("simulated timeout before the charge", retryable=True, code="timeout")
        if fault == "server_error":
            raise GatewayError("simulated 502 from the gateway", retryable=True, code="server_error")

        existing = self._ledger.get(request.idempotency_key)
        if existing is None:
            code = self._decide(request, customer, rule)
            entry = _LedgerEntry(
                reference=f"sim_{uuid.uuid4().hex[:20]}",
                succeeded=code == SUCCEEDED,
                decline_code="" if code == SUCCEEDED else code,
            )
            existing = self._ledger.record(request.idempotency_key, customer, entry, request)
        if fault == "timeout_after_charge":
            raise GatewayError(
                "simulated timeout after the charge went through", retryable=True, code="timeout"
            )
        return self._result(existing)

    def tokenize_test_card(self, *, number: str, exp_month: int, exp_year: int) -> PaymentMethodDetails:
        """The simulated gateway's stand-in for a card form: test numbers only, and only the last four kept.

        Raises ValueError for something that is not a 12-19 digit number.
        """
        digits = "".join(ch for ch in number if ch.isdigit())
        if not 12 <= len(digits) <= 19 or digits != number.replace(" ", "").replace("-", ""):
            raise ValueError("Enter the card number as 12 to 19 digits.")
        brand = {"4": "visa", "5": "mastercard", "3": "amex"}.get(digits[0], "card")
        return PaymentMethodDetails(
            gateway_payment_method_id=f"pm_sim_{digits}",
            type="card",
            brand=brand,
            last4=digits[-4:],
            exp_month=exp_month,
            exp_year=exp_year,
            funding=SIMULATED_FUNDING.get(digits, "credit"),
            country="US",
        )

    def _chaos_fault(self) -> str:
        if not self.chaos:
            return ""
        with self._calls_lock:
            if self._random.random() >= self.chaos:
                return ""
            return self._random.choice(CHAOS_FAULTS)

    def get_truth(self, query: TruthQuery) -> ChargeResult | None:
        if self.truth_failures:
            with self._calls_lock:
                failing = self._random.random() < self.truth_failures
            if failing:
                raise GatewayError(
                    "simulated 503 from the gateway's search", retryable=True, code="server_error"
                )
        entry = self._ledger.get(query.idempotency_key)
        return None if entry is None else self._result(entry)

    def refund(self, request: RefundRequest) -> RefundResult:
        reference, amount = self._ledger.refund(
            request.gateway_reference, request.amount_minor, f"re_sim_{uuid.uuid4().hex[:20]}"
        )
        return RefundResult(reference=reference, amount_minor=amount)

    @staticmethod
    def _result(entry: _LedgerEntry) -> ChargeResult:
        if entry.succeeded:
            return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, gateway_reference=entry.reference)
        return ChargeResult(
            outcome=ChargeOutcome.DECLINED,
            gateway_reference=entry.reference,
            decline_processor=_processor_for(entry.decline_code),
            decline_code=entry.decline_code,
            message=f"Simulated decline: {entry.decline_code}",
        )
