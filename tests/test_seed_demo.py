from __future__ import annotations

from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from customers.models import Contact, Customer, Invoice, InvoiceStatus, PaymentMethod
from dunning.models import CaseEvent, PaymentAttempt, RetryTimingModel

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int, int, int]:
    return (
        Customer.objects.count(),
        Contact.objects.count(),
        PaymentMethod.objects.count(),
        Invoice.objects.count(),
    )


def test_seed_demo_loads_a_realistic_data_set_and_a_second_run_adds_nothing() -> None:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    first = _counts()
    assert first[0] == 200
    assert "200 customers" in out.getvalue()

    assert set(Invoice.objects.values_list("status", flat=True)) == set(InvoiceStatus.values)
    assert Customer.objects.values("currency").distinct().count() >= 5
    assert Customer.objects.values("segment").distinct().count() == 4
    now = timezone.now()
    overdue = Invoice.objects.filter(status=InvoiceStatus.OPEN, due_at__lt=now)
    assert overdue.count() >= 20, "the demo needs failed invoices to recover"
    expiring = PaymentMethod.objects.filter(exp_year=now.year, exp_month=now.month)
    assert expiring.exists(), "some cards must be expiring soon"
    for customer in Customer.objects.all():
        customer.full_clean()

    _assert_smart_retry_history()

    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert _counts() == first
    assert "nothing to do" in out.getvalue()
    assert RetryTimingModel.objects.count() == 1, "a second run learns nothing new"


def _assert_smart_retry_history() -> None:
    """The model, the explanations and the calibration page have real history to show."""
    model = RetryTimingModel.objects.get()
    assert model.attempts_counted >= 3000
    assert model.customers_with_payday >= 120
    assert Customer.objects.exclude(payday=None).count() == model.customers_with_payday
    assert not Customer.objects.filter(country="").exists()
    fundings = set(PaymentMethod.objects.filter(type="card").values_list("funding", flat=True))
    assert {"credit", "debit", "prepaid"} <= fundings
    retries = PaymentAttempt.objects.filter(source="retry", processed=True).exclude(retried_decline_code="")
    assert set(retries.values_list("timing_mode", flat=True)) == {"fixed", "smart"}
    assert not retries.filter(predicted_success=None).exists()
    # A payday effect the priors underrate: retries on payday or the two days after do better.
    near = retries.filter(payday_days__lte=2)
    later = retries.filter(payday_days__gte=3)
    assert near.filter(status="succeeded").count() / near.count() > (
        later.filter(status="succeeded").count() / later.count()
    )
    # The open demo cases' smart slots were chosen by the learnt model: the explanations cite real counts.
    reasons = list(
        CaseEvent.objects.filter(reason__startswith="smart retry scheduled").values_list("reason", flat=True)
    )
    assert reasons
    assert all("%" in reason and "(n=" in reason and "(n=0" not in reason for reason in reasons)
    out = StringIO()
    call_command("run_dunning", now=(timezone.now() + timedelta(days=3)).isoformat(), stdout=out)
    assert "retry.scheduled" in out.getvalue()
    assert CaseEvent.objects.filter(reason__startswith="smart retry scheduled").count() > len(reasons)


def test_seed_demo_is_deterministic() -> None:
    from customers.demo import plan_demo_accounts

    def fingerprint() -> list[tuple[str, str, int, str]]:
        return [
            (customer.external_id, invoice.number, invoice.amount_due_minor, invoice.status)
            for customer, _, _, invoices in plan_demo_accounts(count=30)
            for invoice in invoices
        ]

    assert fingerprint() == fingerprint()


def test_seed_demo_replays_dunning_history_once() -> None:
    from dunning.models import DunningCase

    call_command("seed_demo", customers=40, stdout=StringIO())
    states = set(DunningCase.objects.values_list("state", flat=True))
    assert (
        DunningCase.objects.count()
        == Invoice.objects.filter(payment_attempts__source="initial").distinct().count()
    )
    assert "open" in states
    attempts = PaymentAttempt.objects.count()
    call_command("seed_demo", customers=40, stdout=StringIO())
    assert PaymentAttempt.objects.count() == attempts


def test_the_demo_tells_a_true_story() -> None:
    """Some customers recovered on a retry, some with a new card, some are still declined; and for those,
    what the portal says is true: the card on file declines, the test card 4242 pays."""
    from dunning.gateways.simulated import SUCCEEDED, SimulatedGateway, outcome_for_payment_method
    from dunning.models import DunningCase, RecoveryChannel, SimulatedGatewayRule
    from dunning.portal.services import OutcomeStatus, portal_payment_method_confirmed
    from tests.factories import TEST_ACTOR

    call_command("seed_demo", stdout=StringIO())
    recovered = Counter(
        DunningCase.objects.filter(state="recovered").values_list("recovery_channel", flat=True)
    )
    assert recovered[RecoveryChannel.SILENT_RETRY] >= 10
    assert recovered[RecoveryChannel.EMAIL_PORTAL] >= 5  # a new card on the payment page
    # No replay rule is left to override what a customer types on the portal.
    assert not SimulatedGatewayRule.objects.exists()
    open_cases = list(DunningCase.objects.filter(state="open").select_related("customer", "invoice"))
    card_on_file = {
        case.pk: outcome_for_payment_method(
            PaymentMethod.objects.get(customer=case.customer, is_default=True).gateway_payment_method_id
        )
        for case in open_cases
    }
    still_declined = [case for case in open_cases if card_on_file[case.pk] != SUCCEEDED]
    assert len(still_declined) >= 10
    assert len(open_cases) > len(still_declined), "some open cases recover at their next retry"
    # Each still-declined case opened with its card's own decline.
    for case in still_declined:
        first = case.invoice.payment_attempts.get(source="initial")
        assert first.decline_code == card_on_file[case.pk]

    case = next(c for c in still_declined if c.customer.payment_methods.get(is_default=True).type == "card")
    gateway = SimulatedGateway()
    outcome = portal_payment_method_confirmed(
        customer=case.customer,
        details=gateway.tokenize_test_card(number="4242424242424242", exp_month=12, exp_year=2039),
        channel=RecoveryChannel.EMAIL_PORTAL,
        actor=TEST_ACTOR,
        gateway=gateway,
    )
    assert outcome.status == OutcomeStatus.PAID
    case.refresh_from_db()
    assert case.state == "recovered"
