"""Opening a case when an invoice's charge fails."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import AuditEvent, EntitlementState, InvoiceStatus
from customers.services import invoice_close
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    CaseState,
    DeclineCode,
    DunningCase,
    DunningPolicy,
    PaymentAttempt,
)
from dunning.services.cases import invoice_payment_failed
from tests.factories import (
    TEST_ACTOR,
    CustomerFactory,
    InvoiceFactory,
    PaymentMethodFactory,
    failed_invoice,
    make_policy,
)

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]


def test_a_failed_invoice_opens_a_case_with_the_default_policy_and_records_the_decline() -> None:
    case, invoice, method = failed_invoice(decline_code="insufficient_funds")
    assert case.state == CaseState.OPEN
    assert case.policy_version == DunningPolicy.objects.get(name="Default").current_version
    assert (case.decline_code, case.decline_category) == ("insufficient_funds", "soft")
    assert case.amount_minor == invoice.amount_due_minor
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert (attempt.number, attempt.source, attempt.status) == (
        1,
        AttemptSource.INITIAL,
        AttemptStatus.FAILED,
    )
    assert (attempt.decline_code, attempt.decline_category, attempt.payment_method) == (
        "insufficient_funds",
        "soft",
        method,
    )
    assert case.events.filter(kind=CaseEventKind.OPENED).count() == 1
    invoice.customer.refresh_from_db()
    assert invoice.customer.entitlement_state == EntitlementState.PAST_DUE
    assert AuditEvent.objects.filter(
        customer=invoice.customer, action="customer.entitlement_changed"
    ).exists()


def test_a_second_failure_report_does_not_open_a_second_case() -> None:
    case, invoice, _ = failed_invoice()
    again = invoice_payment_failed(invoice=invoice, actor=TEST_ACTOR, decline_code="do_not_honor")
    assert again is not None and again.pk == case.pk
    assert DunningCase.objects.filter(invoice=invoice).count() == 1
    assert again.decline_code == "do_not_honor"
    assert case.events.filter(kind=CaseEventKind.FAILURE_REPORTED).count() == 1
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 2


def test_a_duplicate_report_with_the_same_gateway_reference_changes_nothing() -> None:
    customer = CustomerFactory()
    PaymentMethodFactory(customer=customer)
    invoice = InvoiceFactory(customer=customer)
    for _ in range(2):
        invoice_payment_failed(
            invoice=invoice, actor=TEST_ACTOR, decline_code="insufficient_funds", gateway_reference="ch_1"
        )
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1
    assert DunningCase.objects.get(invoice=invoice).events.count() == 1


def test_a_failure_report_for_a_paid_invoice_is_ignored() -> None:
    invoice = InvoiceFactory()
    invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=TEST_ACTOR)
    assert (
        invoice_payment_failed(invoice=invoice, actor=TEST_ACTOR, decline_code="insufficient_funds") is None
    )
    assert not DunningCase.objects.exists()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_an_unknown_code_is_treated_as_soft_and_recorded_for_staff() -> None:
    case, _, _ = failed_invoice(decline_code="brand_new_issuer_code")
    assert case.decline_category == "soft"
    code = DeclineCode.objects.get(processor="stripe", code="brand_new_issuer_code")
    assert (code.is_classified, code.category, code.times_seen) == (False, "soft", 1)
    failed_invoice(decline_code="brand_new_issuer_code")
    code.refresh_from_db()
    assert code.times_seen == 2


def test_hard_and_fraud_declines_block_the_method_and_fraud_flags_staff() -> None:
    hard, _, method = failed_invoice(decline_code="expired_card")
    assert hard.decline_category == "hard"
    assert hard.hard_declined_payment_method == method
    fraud, _, _ = failed_invoice(decline_code="stolen_card")
    assert fraud.decline_category == "fraud"
    assert fraud.needs_staff_review


def test_ach_return_codes_are_classified() -> None:
    assert dict(DeclineCode.objects.filter(processor="ach").values_list("code", "category")) == {
        "R01": "soft",
        "R09": "soft",
        "R02": "hard",
        "R03": "hard",
        "R04": "hard",
        "R05": "hard",
        "R07": "hard",
        "R08": "hard",
        "R10": "hard",
        "R16": "hard",
        "R20": "hard",
        "R29": "hard",
    }
    case, _, _ = failed_invoice(decline_code="R02")
    # The default processor for reports is stripe; an ACH return is reported with processor "ach".
    customer = CustomerFactory()
    PaymentMethodFactory(customer=customer, type="us_bank_account")
    invoice = InvoiceFactory(customer=customer, currency="USD")
    ach = invoice_payment_failed(
        invoice=invoice, actor=TEST_ACTOR, decline_processor="ach", decline_code="R02"
    )
    assert ach is not None and ach.decline_category == "hard"


def test_the_first_matching_policy_by_priority_is_chosen() -> None:
    enterprise = make_policy(
        name="Enterprise", steps=[(0, None, "escalate", "", [])], priority=1, match_segment="enterprise"
    )
    euro_big = make_policy(
        name="Big EUR",
        steps=[(0, None, "escalate", "", [])],
        priority=2,
        match_currency="EUR",
        match_min_amount_minor=100_000,
    )
    case, _, _ = failed_invoice(segment="enterprise")
    assert case.policy_version.policy == enterprise
    case, _, _ = failed_invoice(segment="smb", amount_minor=250_000)
    assert case.policy_version.policy == euro_big
    case, _, _ = failed_invoice(segment="smb", amount_minor=5_000)
    assert case.policy_version.policy.name == "Default"


def test_opened_at_is_the_failure_time() -> None:
    failed_at = timezone.now() - timedelta(days=3)
    case, _, _ = failed_invoice(failed_at=failed_at)
    assert case.opened_at == failed_at
    assert case.next_action_at == failed_at
