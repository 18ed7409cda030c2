"""The Stripe gateway beyond the shared contract: paying Stripe's own invoices, errors, amounts, the hosted
setup page, default methods, and the engine charging and reconciling through it (all over localstripe)."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from customers.models import InvoiceStatus
from dunning.gateways import ChargeOutcome, ChargeRequest, GatewayError, RefundRequest, TruthQuery
from dunning.gateways.stripe import SDK_API_VERSION, StripeGateway
from dunning.gateways.stripe_amounts import AmountNotRepresentable, from_stripe_amount, to_stripe_amount
from dunning.models import AttemptSource, AttemptStatus, CaseState, PaymentAttempt, RecoveryChannel
from dunning.services.charging import attempt_charge
from dunning.services.tick import run_tick
from tests.factories import TEST_ACTOR, CustomerFactory, InvoiceFactory, PaymentMethodFactory, failed_invoice
from tests.support import stripe_account as cards
from tests.support.stripe_account import StripeAccount

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]
PROJECT = Path(__file__).resolve().parent.parent
IMPORT_STRIPE = re.compile(r"^\s*(import stripe\b|from stripe\b)", re.MULTILINE)


def test_only_the_gateway_module_imports_the_stripe_sdk() -> None:
    importing = sorted(
        str(path.relative_to(PROJECT))
        for app in ("config", "customers", "notifications", "dunning", "reporting")
        for path in (PROJECT / app).rglob("*.py")
        if IMPORT_STRIPE.search(path.read_text())
    )
    assert importing == ["dunning/gateways/stripe.py"]


def test_the_pinned_api_version_is_the_sdks() -> None:
    assert django_settings.STRIPE_API_VERSION == SDK_API_VERSION


@pytest.mark.parametrize(
    ("minor", "currency", "stripe"),
    [
        (4900, "EUR", 4900),
        (500, "JPY", 500),
        (5000, "ISK", 500000),  # ISO: no decimals; Stripe: two, whole krónur only
        (50000, "MGA", 500),  # ISO: two decimals; Stripe: zero-decimal
        (5000, "UGX", 5000),
        (12340, "KWD", 12340),
        (123456, "HUF", 123456),
    ],
)
def test_amounts_convert_both_ways_between_iso_and_stripe_units(
    minor: int, currency: str, stripe: int
) -> None:
    assert to_stripe_amount(minor, currency) == stripe
    assert from_stripe_amount(stripe, currency) == minor


@pytest.mark.parametrize(
    ("call", "amount", "currency"),
    [
        (to_stripe_amount, 50050, "MGA"),  # half an ariary
        (to_stripe_amount, 12345, "KWD"),  # Stripe wants the last digit 0
        (from_stripe_amount, 12345, "ISK"),  # fractional krónur from an old charge
    ],
)
def test_amounts_that_cannot_be_exact_are_refused_never_rounded(call, amount: int, currency: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AmountNotRepresentable):
        call(amount, currency)


def test_without_a_secret_key_the_gateway_refuses_to_start(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(GatewayError, match="STRIPE_SECRET_KEY"):
        StripeGateway()


def _invoice_request(
    account: StripeAccount, invoice: object, *, key: str, amount: int = 4900
) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=key,
        amount_minor=amount,
        currency="EUR",
        customer_ref=invoice.customer,  # type: ignore[attr-defined]
        payment_method_ref="",
        invoice_number=invoice.number,  # type: ignore[attr-defined]
        gateway_invoice_ref=invoice.id,  # type: ignore[attr-defined]
    )


def test_a_stripe_invoice_is_paid_as_that_invoice(stripe_account: StripeAccount) -> None:
    customer = stripe_account.customer()
    stripe_account.card(customer.id, cards.GOOD_CARD)
    invoice = stripe_account.invoice(customer.id)
    gateway = StripeGateway()
    result = gateway.charge(_invoice_request(stripe_account, invoice, key="pay-1"))
    assert result.outcome == ChargeOutcome.SUCCEEDED
    assert result.gateway_reference.startswith("ch_")
    assert stripe_account.sdk.v1.invoices.retrieve(invoice.id).status == "paid"
    # No separate PaymentIntent was made outside the invoice.
    intents = stripe_account.sdk.v1.payment_intents.list(params={"customer": customer.id}).data
    assert [intent.invoice for intent in intents] == [invoice.id]
    # And it is never paid twice: a later attempt is refused before any charge.
    with pytest.raises(GatewayError) as error:
        gateway.charge(_invoice_request(stripe_account, invoice, key="pay-2"))
    assert (error.value.retryable, error.value.code) == (False, "invoice_not_open")


def test_a_declined_stripe_invoice_reports_the_charge_and_its_decline_code(
    stripe_account: StripeAccount,
) -> None:
    customer = stripe_account.customer()
    stripe_account.card(customer.id, cards.INSUFFICIENT_FUNDS)
    invoice = stripe_account.invoice(customer.id)
    result = StripeGateway().charge(_invoice_request(stripe_account, invoice, key="pay-d"))
    assert (result.outcome, result.decline_code) == (ChargeOutcome.DECLINED, "insufficient_funds")
    assert result.gateway_reference.startswith("ch_")
    # Its truth, asked later, is the same decline.
    truth = StripeGateway().get_truth(
        TruthQuery(
            idempotency_key="pay-d",
            gateway_invoice_ref=invoice.id,
            started_at=timezone.now() - timedelta(minutes=1),
        )
    )
    assert truth is not None and (truth.decline_code, truth.gateway_reference) == (
        "insufficient_funds",
        result.gateway_reference,
    )


def test_an_amount_that_differs_from_stripes_invoice_is_not_charged(stripe_account: StripeAccount) -> None:
    customer = stripe_account.customer()
    stripe_account.card(customer.id, cards.GOOD_CARD)
    invoice = stripe_account.invoice(customer.id, amount=4900)
    with pytest.raises(GatewayError) as error:
        StripeGateway().charge(_invoice_request(stripe_account, invoice, key="pay-m", amount=5900))
    assert error.value.code == "amount_mismatch"
    assert stripe_account.sdk.v1.invoices.retrieve(invoice.id).status == "open"


def test_an_on_session_payment_that_needs_3d_secure_is_the_authentication_category(
    stripe_account: StripeAccount,
) -> None:
    customer = stripe_account.customer()
    method = stripe_account.card(customer.id, cards.NEEDS_AUTHENTICATION)
    result = StripeGateway().charge(
        ChargeRequest(
            idempotency_key="on-session",
            amount_minor=1000,
            currency="EUR",
            customer_ref=customer.id,
            payment_method_ref=method.id,
            invoice_number="INV-3DS",
            off_session=False,
        )
    )
    assert (result.outcome, result.decline_code) == (ChargeOutcome.DECLINED, "authentication_required")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_network_errors_timeouts_and_5xx_are_retryable(stripe_account: StripeAccount) -> None:
    customer = stripe_account.customer()
    method = stripe_account.card(customer.id, cards.GOOD_CARD)
    request = ChargeRequest(
        idempotency_key="net-1",
        amount_minor=1000,
        currency="EUR",
        customer_ref=customer.id,
        payment_method_ref=method.id,
        invoice_number="INV-NET",
    )
    unreachable = StripeGateway(api_base=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(GatewayError) as error:
        unreachable.charge(request)
    assert (error.value.retryable, error.value.code) == (True, "network")

    stripe_account.server.fault("/v1/payment_intents", "delay", seconds=1.5)
    with pytest.raises(GatewayError) as error:
        StripeGateway(timeout=0.5).charge(request)
    assert (error.value.retryable, error.value.code) == (True, "network")

    stripe_account.server.fault("/v1/payment_intents", "before", status=503)
    with pytest.raises(GatewayError) as error:
        StripeGateway().charge(ChargeRequest(**{**request.__dict__, "idempotency_key": "net-2"}))
    assert (error.value.retryable, error.value.code) == (True, "server_error")

    # 409: the same key is still being processed at Stripe (our own timed-out try): maybe charged.
    stripe_account.server.fault("/v1/payment_intents", "before", status=409)
    with pytest.raises(GatewayError) as error:
        StripeGateway().charge(ChargeRequest(**{**request.__dict__, "idempotency_key": "net-3"}))
    assert (error.value.retryable, error.value.code) == (True, "conflict")


def test_a_reused_key_with_other_parameters_is_an_unknown_outcome_not_a_decline(
    stripe_account: StripeAccount,
) -> None:
    customer = stripe_account.customer()
    method = stripe_account.card(customer.id, cards.GOOD_CARD)
    base = ChargeRequest(
        idempotency_key="reused",
        amount_minor=1000,
        currency="EUR",
        customer_ref=customer.id,
        payment_method_ref=method.id,
        invoice_number="INV-R",
    )
    assert StripeGateway().charge(base).succeeded
    with pytest.raises(GatewayError) as error:
        StripeGateway().charge(ChargeRequest(**{**base.__dict__, "amount_minor": 2000}))
    assert (error.value.retryable, error.value.code) == (True, "idempotency_error")


def test_the_hosted_setup_page_is_a_checkout_session_in_setup_mode(stripe_account: StripeAccount) -> None:
    customer = stripe_account.customer()
    gateway = StripeGateway()
    session = gateway.start_payment_method_update(
        customer_ref=customer.id,
        return_url="https://billing.example.com/portal/tok/return/?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://billing.example.com/portal/tok/",
        metadata={"case": "17"},
    )
    assert session is not None and session.reference.startswith("cs_")
    assert session.url.startswith(stripe_account.server.base_url)
    stored = stripe_account.sdk.v1.checkout.sessions.retrieve(session.reference)
    assert (stored.mode, stored.customer, stored.metadata.to_dict()) == ("setup", customer.id, {"case": "17"})
    assert gateway.complete_payment_method_update(reference=session.reference) is None  # not filled in yet

    stripe_account.server.complete_checkout(session.reference, "5555555555554444", exp_month=7, exp_year=2031)
    details = gateway.complete_payment_method_update(reference=session.reference)
    assert details is not None
    assert (details.type, details.last4, details.exp_month, details.exp_year) == ("card", "4444", 7, 2031)
    attached = stripe_account.sdk.v1.payment_methods.retrieve(details.gateway_payment_method_id)
    assert attached.customer == customer.id


def test_setting_the_default_updates_the_customer_and_its_live_subscriptions(
    stripe_account: StripeAccount,
) -> None:
    customer = stripe_account.customer()
    stripe_account.card(customer.id, cards.GOOD_CARD)
    plan = stripe_account.sdk.v1.plans.create(
        params={"amount": 1000, "currency": "eur", "interval": "month", "product": {"name": "Team"}}
    )
    subscription = stripe_account.sdk.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"plan": plan.id}]}
    )
    assert subscription.status == "active"
    new_card = stripe_account.card(customer.id, "5555555555554444", default=False)
    StripeGateway().set_default_payment_method(customer_ref=customer.id, payment_method_ref=new_card.id)
    refreshed = stripe_account.sdk.v1.customers.retrieve(customer.id)
    assert refreshed.invoice_settings.default_payment_method == new_card.id
    assert stripe_account.sdk.v1.subscriptions.retrieve(subscription.id).default_payment_method == new_card.id


def test_an_invoice_from_elsewhere_is_charged_with_a_payment_intent_carrying_invoice_and_key(
    stripe_account: StripeAccount,
) -> None:
    stripe_customer = stripe_account.customer()
    method = stripe_account.card(stripe_customer.id, cards.GOOD_CARD)
    customer = CustomerFactory(gateway_customer_id=stripe_customer.id, currency="EUR")
    PaymentMethodFactory(customer=customer, gateway_payment_method_id=method.id)
    invoice = InvoiceFactory(customer=customer, amount_due_minor=12345, gateway="csv")
    attempt = attempt_charge(invoice=invoice, source=AttemptSource.STAFF, actor=TEST_ACTOR)
    assert attempt.status == AttemptStatus.SUCCEEDED
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    (intent,) = stripe_account.sdk.v1.payment_intents.list(params={"customer": stripe_customer.id}).data
    assert (intent.amount, intent.currency, intent.status) == (12345, "eur", "succeeded")
    assert intent.metadata["invoice_number"] == invoice.number
    assert intent.metadata["idempotency_key"] == attempt.idempotency_key


def test_an_unknown_attempt_is_reconciled_with_stripe_before_anything_else(
    stripe_account: StripeAccount,
) -> None:
    stripe_customer = stripe_account.customer()
    method = stripe_account.card(stripe_customer.id, cards.GOOD_CARD)
    customer = CustomerFactory(gateway_customer_id=stripe_customer.id, currency="EUR", time_zone="UTC")
    case, invoice, _ = failed_invoice(card=method.id, customer=customer)
    # The charge goes through at Stripe, but the answer is lost.
    stripe_account.server.fault("/v1/payment_intents", "after")
    attempt = attempt_charge(invoice=invoice, source=AttemptSource.STAFF, actor=TEST_ACTOR)
    assert attempt.status == AttemptStatus.UNKNOWN
    summary = run_tick(now=timezone.now())
    assert summary.counts["reconciled"] == 1
    attempt.refresh_from_db()
    case.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, RecoveryChannel.STAFF)
    assert len(stripe_account.sdk.v1.payment_intents.list(params={"customer": stripe_customer.id}).data) == 1


def test_a_retry_charges_stripes_current_default_after_a_missed_customer_update(
    stripe_account: StripeAccount,
) -> None:
    """Our copy still says the old, declining card; at Stripe the customer made a new card the default and
    the webhook never reached us. The retry charges Stripe's default, and our copy follows it."""
    stripe_customer = stripe_account.customer()
    old = stripe_account.card(stripe_customer.id, cards.INSUFFICIENT_FUNDS)
    customer = CustomerFactory(gateway_customer_id=stripe_customer.id, currency="EUR", time_zone="UTC")
    case, invoice, old_copy = failed_invoice(
        card=old.id, customer=customer, failed_at=timezone.now() - timedelta(days=2)
    )
    new = stripe_account.card(stripe_customer.id, cards.GOOD_CARD)  # default at Stripe, unknown here
    summary = run_tick(now=timezone.now())
    assert summary.counts["retry.succeeded"] == 1, summary.lines()
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    attempt = PaymentAttempt.objects.get(source=AttemptSource.RETRY)
    assert attempt.payment_method.gateway_payment_method_id == new.id
    assert (attempt.payment_method.last4, attempt.payment_method.is_default) == ("4242", True)
    old_copy.refresh_from_db()
    assert not old_copy.is_default
    (intent,) = stripe_account.sdk.v1.payment_intents.list(params={"customer": stripe_customer.id}).data
    assert intent.payment_method == new.id


def test_stripes_default_that_was_hard_declined_is_never_charged_again(stripe_account: StripeAccount) -> None:
    stripe_customer = stripe_account.customer()
    expired = stripe_account.card(stripe_customer.id, cards.GOOD_CARD)
    customer = CustomerFactory(gateway_customer_id=stripe_customer.id, currency="EUR", time_zone="UTC")
    case, invoice, method = failed_invoice(card=expired.id, customer=customer, decline_code="expired_card")
    # Staff try anyway with "retry now" on a gateway default that is the blocked card: refused before sending.
    customer.payment_methods.update(is_default=False)
    PaymentMethodFactory(customer=customer, gateway_payment_method_id="pm_local_only", is_default=True)
    attempt = attempt_charge(invoice=invoice, source=AttemptSource.STAFF, actor=TEST_ACTOR)
    assert (attempt.status, attempt.decline_code, attempt.processed) == (
        AttemptStatus.FAILED,
        "payment_method_blocked",
        False,
    )
    assert not stripe_account.sdk.v1.payment_intents.list(params={"customer": stripe_customer.id}).data


def test_a_refund_through_stripe_happens_once_per_key(stripe_account: StripeAccount) -> None:
    stripe_customer = stripe_account.customer()
    method = stripe_account.card(stripe_customer.id, cards.GOOD_CARD)
    customer = CustomerFactory(gateway_customer_id=stripe_customer.id, currency="EUR")
    PaymentMethodFactory(customer=customer, gateway_payment_method_id=method.id)
    invoice = InvoiceFactory(customer=customer, amount_due_minor=4900, gateway="csv")
    attempt = attempt_charge(invoice=invoice, source=AttemptSource.STAFF, actor=TEST_ACTOR)
    gateway = StripeGateway()
    request = RefundRequest(
        idempotency_key=f"{django_settings.DUNNING_IDEMPOTENCY_PREFIX}-refund-1",
        gateway_reference=attempt.gateway_reference,
        amount_minor=4900,
        currency="EUR",
    )
    first, again = gateway.refund(request), gateway.refund(request)
    assert first == again
    assert first.amount_minor == 4900
    refunds = stripe_account.sdk.v1.refunds.list(params={"limit": 10}).data
    assert [refund.id for refund in refunds] == [first.reference]
