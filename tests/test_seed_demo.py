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
    call_command("seed_demo", customers=20, stdout=StringIO())
    snapshot = list(Invoice.objects.order_by("number").values_list("number", "amount_due_minor", "status"))
    Invoice.objects.all().delete()
    Customer.objects.all().delete()
    call_command("seed_demo", customers=20, stdout=StringIO())
    assert (
        list(Invoice.objects.order_by("number").values_list("number", "amount_due_minor", "status"))
        == snapshot
    )
