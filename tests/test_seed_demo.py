from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from customers.models import Contact, Customer, Invoice, InvoiceStatus, PaymentMethod

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

    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert _counts() == first
    assert "nothing to do" in out.getvalue()


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
    from dunning.models import DunningCase, PaymentAttempt

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
