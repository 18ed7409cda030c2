"""The gateway contract: every implementation behaves the same to the dunning engine.

The same tests run against the simulated gateway and the Stripe gateway (the official SDK over HTTP to
localstripe): a success, each decline category, an idempotent retry with the same key, and an unknown
outcome settled by asking for the truth.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from dunning.gateways import ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, TruthQuery
from dunning.gateways.simulated import SimulatedGateway
from dunning.models import DeclineCategory, SimulatedCharge, SimulatedGatewayRule
from dunning.services.declines import DeclineTable
from tests.support import stripe_account as cards

pytestmark = pytest.mark.django_db


@dataclass
class Contract:
    gateway: PaymentGateway
    # card number -> (customer ref, payment method ref, customer key used in metadata)
    payment_method: Callable[[str], tuple[str, str, str]]
    # make the next charge of this customer fail "before" it runs or "after" it charged
    fault: Callable[[str, str], None]
    # how many charges the processor recorded for this customer
    charges: Callable[[str], int]

    def request(self, card: str, *, key: str | None = None, amount: int = 4900) -> ChargeRequest:
        customer_ref, method_ref, customer = self.payment_method(card)
        return ChargeRequest(
            idempotency_key=key or f"contract-{uuid.uuid4().hex}",
            amount_minor=amount,
            currency="EUR",
            customer_ref=customer_ref,
            payment_method_ref=method_ref,
            invoice_number=f"INV-{uuid.uuid4().hex[:8]}",
            metadata={"customer": customer},
        )


def _simulated() -> Contract:
    gateway = SimulatedGateway()

    def payment_method(card: str) -> tuple[str, str, str]:
        customer = f"sim-{uuid.uuid4().hex[:8]}"
        return f"cus_{customer}", f"pm_sim_{card}", customer

    def fault(customer: str, mode: str) -> None:
        SimulatedGatewayRule.objects.update_or_create(
            customer_external_id=customer,
            defaults={"fault": "timeout" if mode == "before" else "timeout_after_charge"},
        )
        gateway._rules = None  # rules are read once per instance; this one must see the new rule

    def charges(customer: str) -> int:
        return SimulatedCharge.objects.filter(customer_ref=customer).count()

    return Contract(gateway, payment_method, fault, charges)


def _stripe(account: cards.StripeAccount) -> Contract:
    from dunning.gateways.stripe import StripeGateway

    gateway = StripeGateway()

    def payment_method(card: str) -> tuple[str, str, str]:
        customer = account.customer()
        method = account.card(customer.id, card)
        return customer.id, method.id, customer.id

    def fault(customer: str, mode: str) -> None:
        account.server.fault("/v1/payment_intents", mode)

    def charges(customer: str) -> int:
        return len(account.sdk.v1.payment_intents.list(params={"customer": customer, "limit": 100}).data)

    return Contract(gateway, payment_method, fault, charges)


@pytest.fixture(params=["simulated", "stripe"])
def contract(request: pytest.FixtureRequest) -> Contract:
    if request.param == "simulated":
        return _simulated()
    built = _stripe(request.getfixturevalue("stripe_account"))
    request.addfinalizer(built.gateway.close)
    return built


def test_a_good_card_is_charged(contract: Contract) -> None:
    charge = contract.request(cards.GOOD_CARD)
    result = contract.gateway.charge(charge)
    assert result.outcome == ChargeOutcome.SUCCEEDED
    assert result.gateway_reference
    assert contract.charges(charge.metadata["customer"]) == 1


@pytest.mark.parametrize(
    ("card", "code", "category"),
    [
        (cards.INSUFFICIENT_FUNDS, "insufficient_funds", DeclineCategory.SOFT),
        (cards.DECLINE_AFTER_ATTACH, "generic_decline", DeclineCategory.SOFT),
        (cards.EXPIRED_CARD, "expired_card", DeclineCategory.HARD),
        (cards.FRAUDULENT, "fraudulent", DeclineCategory.FRAUD),
        (cards.PROCESSING_ERROR, "processing_error", DeclineCategory.PROCESSING),
        (cards.NEEDS_AUTHENTICATION, "authentication_required", DeclineCategory.AUTHENTICATION_REQUIRED),
    ],
)
def test_each_decline_category_comes_back_with_its_code(
    contract: Contract, card: str, code: str, category: str
) -> None:
    result = contract.gateway.charge(contract.request(card))
    assert (result.outcome, result.decline_processor, result.decline_code) == (
        ChargeOutcome.DECLINED,
        "stripe",
        code,
    )
    assert result.message
    assert DeclineTable().lookup(result.decline_processor, result.decline_code).category == category


def test_the_same_idempotency_key_charges_once_and_answers_the_same(contract: Contract) -> None:
    charge = contract.request(cards.GOOD_CARD)
    first = contract.gateway.charge(charge)
    again = contract.gateway.charge(charge)
    assert again == first
    assert contract.charges(charge.metadata["customer"]) == 1


def test_a_repeated_decline_is_the_same_decline(contract: Contract) -> None:
    charge = contract.request(cards.INSUFFICIENT_FUNDS)
    assert contract.gateway.charge(charge) == contract.gateway.charge(charge)
    assert contract.charges(charge.metadata["customer"]) == 1


def _truth_query(charge: ChargeRequest) -> TruthQuery:
    return TruthQuery(
        idempotency_key=charge.idempotency_key,
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        customer_ref=charge.customer_ref,
        started_at=timezone.now() - timedelta(seconds=5),
    )


def test_an_answer_lost_after_the_charge_is_settled_as_a_success_by_the_truth(contract: Contract) -> None:
    charge = contract.request(cards.GOOD_CARD)
    contract.fault(charge.metadata["customer"], "after")
    with pytest.raises(GatewayError) as error:
        contract.gateway.charge(charge)
    assert error.value.retryable
    truth = contract.gateway.get_truth(_truth_query(charge))
    assert truth is not None and truth.outcome == ChargeOutcome.SUCCEEDED
    assert contract.charges(charge.metadata["customer"]) == 1


def test_a_request_that_never_ran_has_no_truth_so_nothing_was_charged(contract: Contract) -> None:
    charge = contract.request(cards.GOOD_CARD)
    contract.fault(charge.metadata["customer"], "before")
    with pytest.raises(GatewayError) as error:
        contract.gateway.charge(charge)
    assert error.value.retryable
    assert contract.gateway.get_truth(_truth_query(charge)) is None
    assert contract.charges(charge.metadata["customer"]) == 0


def test_the_truth_of_a_decline_is_the_decline(contract: Contract) -> None:
    charge = contract.request(cards.EXPIRED_CARD)
    result = contract.gateway.charge(charge)
    truth = contract.gateway.get_truth(_truth_query(charge))
    assert truth is not None
    assert (truth.outcome, truth.decline_code) == (ChargeOutcome.DECLINED, "expired_card")
    assert truth.gateway_reference == result.gateway_reference


def test_a_charge_without_a_payment_method_is_a_permanent_error(contract: Contract) -> None:
    charge = contract.request(cards.GOOD_CARD)
    charge = ChargeRequest(**{**charge.__dict__, "payment_method_ref": ""})
    with pytest.raises(GatewayError) as error:
        contract.gateway.charge(charge)
    assert not error.value.retryable
    assert contract.charges(charge.metadata["customer"]) == 0
