from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import InvoiceStatus
from customers.selectors import customer_overdue_balances
from tests.factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db


def test_overdue_balance_is_per_currency_and_counts_only_what_is_left_to_pay() -> None:
    customer = CustomerFactory(currency="EUR")
    now = timezone.now()
    InvoiceFactory(customer=customer, currency="EUR", amount_due_minor=1000, due_at=now - timedelta(days=3))
    InvoiceFactory(
        customer=customer,
        currency="EUR",
        amount_due_minor=2000,
        amount_paid_minor=500,
        due_at=now - timedelta(days=1),
    )
    InvoiceFactory(customer=customer, currency="USD", amount_due_minor=700, due_at=now - timedelta(days=9))
    # Not overdue: due in the future, paid, void, draft, or another customer's.
    InvoiceFactory(customer=customer, currency="EUR", amount_due_minor=9999, due_at=now + timedelta(days=2))
    InvoiceFactory(
        customer=customer,
        currency="EUR",
        status=InvoiceStatus.PAID,
        amount_due_minor=9999,
        amount_paid_minor=9999,
    )
    InvoiceFactory(customer=customer, currency="EUR", status=InvoiceStatus.VOID, amount_due_minor=9999)
    InvoiceFactory(customer=customer, currency="EUR", status=InvoiceStatus.DRAFT, amount_due_minor=9999)
    InvoiceFactory(currency="EUR", amount_due_minor=9999)

    assert customer_overdue_balances(customer=customer, now=now) == {"EUR": 2500, "USD": 700}


def test_no_overdue_invoices_gives_an_empty_balance() -> None:
    assert customer_overdue_balances(customer=CustomerFactory()) == {}
