"""The simulated gateway: table-driven outcomes, idempotency by key, injected faults, the truth."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from dunning.gateways import ChargeOutcome, ChargeRequest, GatewayError, TruthQuery, get_gateway
from dunning.gateways.base import PaymentGateway
from dunning.gateways.simulated import SimulatedGateway, _MemoryLedger, outcome_for_payment_method
from dunning.models import SimulatedCharge, SimulatedGatewayRule

pytestmark = pytest.mark.django_db


def request(key: str, card: str = "pm_sim_4242424242424242", customer: str = "c1") -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=key,
        amount_minor=4900,
        currency="EUR",
        customer_ref="cus_1",
        payment_method_ref=card,
        invoice_number="INV-1",
        metadata={"customer": customer},
    )


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        ("pm_sim_4242424242424242", "succeeded"),
        ("pm_sim_4000000000000002", "generic_decline"),
        ("pm_sim_4000000000009995", "insufficient_funds"),
        ("pm_sim_4000000000000069", "expired_card"),
        ("pm_sim_4000000000009987", "lost_card"),
        ("pm_sim_4000002500003155", "authentication_required"),
        ("pm_sim_4000000000000119", "processing_error"),
        ("pm_sim_decline_do_not_honor", "do_not_honor"),
        ("pm_sim_decline_R01", "R01"),
        ("pm_card_visa", "succeeded"),
    ],
)
def test_outcomes_follow_stripes_test_cards(card: str, expected: str) -> None:
    assert outcome_for_payment_method(card) == expected


def test_declines_carry_a_normalised_code_and_processor() -> None:
    gateway = SimulatedGateway()
    result = gateway.charge(request("k1", "pm_sim_4000000000009995"))
    assert (result.outcome, result.decline_processor, result.decline_code) == (
        ChargeOutcome.DECLINED,
        "stripe",
        "insufficient_funds",
    )
    ach = gateway.charge(request("k2", "pm_sim_decline_R02"))
    assert (ach.decline_processor, ach.decline_code) == ("ach", "R02")


def test_the_same_idempotency_key_returns_the_first_answer_and_charges_once() -> None:
    gateway = SimulatedGateway()
    first = gateway.charge(request("same-key"))
    second = gateway.charge(request("same-key", card="pm_sim_4000000000009995"))
    assert first == second
    assert SimulatedCharge.objects.filter(idempotency_key="same-key").count() == 1


def test_rules_give_a_sequence_of_outcomes_per_customer() -> None:
    SimulatedGatewayRule.objects.create(
        customer_external_id="c9", outcomes=["insufficient_funds", "succeeded"]
    )
    gateway = SimulatedGateway()
    assert gateway.charge(request("a", customer="c9")).decline_code == "insufficient_funds"
    assert gateway.charge(request("b", customer="c9")).succeeded
    assert gateway.charge(request("c", customer="c9")).succeeded  # the last outcome repeats


def test_injected_faults() -> None:
    SimulatedGatewayRule.objects.create(customer_external_id="t1", fault="timeout")
    SimulatedGatewayRule.objects.create(customer_external_id="t2", fault="server_error")
    SimulatedGatewayRule.objects.create(customer_external_id="t3", fault="timeout_after_charge")
    gateway = SimulatedGateway()
    for customer in ("t1", "t2", "t3"):
        with pytest.raises(GatewayError) as error:
            gateway.charge(request(f"fault-{customer}", customer=customer))
        assert error.value.retryable
    # Only the one that timed out *after* charging left a charge behind; the truth tells it.
    assert gateway.get_truth(TruthQuery(idempotency_key="fault-t1")) is None
    truth = gateway.get_truth(TruthQuery(idempotency_key="fault-t3"))
    assert truth is not None and truth.succeeded


def test_latency_is_injected() -> None:
    gateway = SimulatedGateway(ledger="memory", latency_ms=50, rules=[])
    started = time.perf_counter()
    gateway.charge(request("slow"))
    assert time.perf_counter() - started >= 0.05


def test_the_memory_ledger_is_shared_inside_the_process_and_touches_no_table() -> None:
    _MemoryLedger.reset()
    SimulatedGateway(ledger="memory", rules=[]).charge(request("mem-1"))
    assert (
        SimulatedGateway(ledger="memory", rules=[]).get_truth(TruthQuery(idempotency_key="mem-1")) is not None
    )
    assert not SimulatedCharge.objects.exists()


def test_calls_are_recorded() -> None:
    gateway = SimulatedGateway(ledger="memory", rules=[])
    gateway.charge(request("rec-1"))
    assert [call.idempotency_key for call in gateway.calls] == ["rec-1"]


class CustomGateway(PaymentGateway):
    name = "custom"

    def charge(self, request):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def get_truth(self, query):  # type: ignore[no-untyped-def]
        return None


def test_payment_gateway_setting_accepts_a_dotted_path() -> None:
    assert isinstance(get_gateway(), SimulatedGateway)
    with override_settings(PAYMENT_GATEWAY="tests.test_gateway_simulated.CustomGateway"):
        assert isinstance(get_gateway(), CustomGateway)
    with override_settings(PAYMENT_GATEWAY="tests.test_gateway_simulated.request"), pytest.raises(TypeError):
        get_gateway()


def test_the_test_card_form_keeps_only_the_last_four_digits() -> None:
    details = SimulatedGateway(ledger="memory", rules=[]).tokenize_test_card(
        number="4000 0000 0000 9995", exp_month=12, exp_year=2030
    )
    assert (details.gateway_payment_method_id, details.brand, details.last4) == (
        "pm_sim_4000000000009995",
        "visa",
        "9995",
    )
    with pytest.raises(ValueError, match="12 to 19 digits"):
        SimulatedGateway(ledger="memory", rules=[]).tokenize_test_card(
            number="4242x", exp_month=1, exp_year=2030
        )


def test_the_token_bucket_limits_requests_per_second() -> None:
    from dunning.gateways.ratelimit import TokenBucket

    bucket = TokenBucket(rate=50, burst=1)
    started = time.perf_counter()
    for _ in range(11):
        bucket.acquire()
    # One token at once, then one every 20 ms: ten more take at least 0.2 s.
    assert time.perf_counter() - started >= 0.19
    with pytest.raises(ValueError):
        TokenBucket(rate=0)


def test_the_tick_pool_charges_several_requests_at_once_but_never_more_than_its_size() -> None:
    import threading

    from dunning.services.charging import call_gateway

    class Counting(SimulatedGateway):
        def __init__(self) -> None:
            super().__init__(ledger="memory", latency_ms=30, rules=[])
            self.active = self.peak = 0
            self.lock = threading.Lock()

        def charge(self, request):  # type: ignore[no-untyped-def]
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                return super().charge(request)
            finally:
                with self.lock:
                    self.active -= 1

    _MemoryLedger.reset()
    gateway = Counting()
    results = call_gateway(gateway, [(n, request(f"pool-{n}")) for n in range(20)], concurrency=4)
    assert sorted(results) == list(range(20))
    assert all(result.succeeded for result in results.values())
    assert gateway.peak == 4
