"""The finance staff's admin: money formatting, bad input refused, and changelists that stay cheap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus
from customers.services import audit_record
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    InvoiceFactory,
    PaymentMethodFactory,
)

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "admin:customers_invoice_changelist",
    "admin:customers_customer_changelist",
    "admin:customers_paymentmethod_changelist",
    "admin:customers_auditevent_changelist",
]


def _make_rows(n: int) -> None:
    for _ in range(n):
        customer = CustomerFactory()
        ContactFactory(customer=customer)
        PaymentMethodFactory(customer=customer)
        invoice = InvoiceFactory(customer=customer)
        audit_record(actor=Actor.system("test"), action="invoice.created", customer=customer, invoice=invoice)


def _queries_for(client, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, url_name: str) -> None:  # type: ignore[no-untyped-def]
    url = reverse(url_name)
    _make_rows(5)
    _queries_for(admin_client, url)  # warms the cached filter choices, as on a live site
    small = _queries_for(admin_client, url)
    _make_rows(5)
    large = _queries_for(admin_client, url)
    assert len(small) == len(large), "\n".join(large)


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_changelist_never_counts_or_distincts_the_whole_table(admin_client, url_name: str) -> None:  # type: ignore[no-untyped-def]
    _make_rows(3)
    for sql in _queries_for(admin_client, reverse(url_name)):
        upper = sql.upper()
        assert "DISTINCT" not in upper, sql
        if "COUNT(" in upper:
            # Counting is bounded by the paginator's limit (a LIMIT inside the counted subquery).
            assert "LIMIT" in upper, sql


def test_date_drill_down_reads_only_min_and_max(admin_client) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    InvoiceFactory(due_at=now - timedelta(days=400))
    InvoiceFactory(due_at=now)
    queries = _queries_for(admin_client, reverse("admin:customers_invoice_changelist"))
    assert any("MIN(" in q.upper() and "MAX(" in q.upper() for q in queries)
    response = admin_client.get(reverse("admin:customers_invoice_changelist"))
    for year in range((now - timedelta(days=400)).year, now.year + 1):
        assert f"due_at__year={year}" in response.content.decode()


def test_invoice_changelist_shows_amounts_as_money(admin_client) -> None:  # type: ignore[no-untyped-def]
    InvoiceFactory(customer=CustomerFactory(currency="EUR"), amount_due_minor=123450)
    InvoiceFactory(customer=CustomerFactory(currency="JPY"), amount_due_minor=5000)
    content = admin_client.get(reverse("admin:customers_invoice_changelist")).content.decode()
    assert "€1,234.50" in content
    assert "¥5,000" in content


def test_invoice_search_is_exact(admin_client) -> None:  # type: ignore[no-untyped-def]
    wanted = InvoiceFactory(number="INV-77")
    InvoiceFactory(number="INV-770")
    response = admin_client.get(reverse("admin:customers_invoice_changelist"), {"q": "INV-77"})
    assert list(response.context["cl"].result_list) == [wanted]
    response = admin_client.get(
        reverse("admin:customers_invoice_changelist"), {"q": wanted.customer.external_id}
    )
    assert list(response.context["cl"].result_list) == [wanted]


def test_customer_search_by_external_id_name_and_email(admin_client) -> None:  # type: ignore[no-untyped-def]
    alice = CustomerFactory(external_id="acct-1", name="Alice Martin", email="alice@corp.example")
    CustomerFactory(external_id="acct-2", name="Bob", email="bob@other.example")
    url = reverse("admin:customers_customer_changelist")
    for term in ["acct-1", "Alice", "corp.example"]:
        assert list(admin_client.get(url, {"q": term}).context["cl"].result_list) == [alice]


def test_admin_form_refuses_a_negative_amount(admin_client) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    response = admin_client.post(
        reverse("admin:customers_invoice_add"),
        {
            "customer": customer.pk,
            "number": "NEG-1",
            "status": "open",
            "currency": "EUR",
            "amount_due": "-5.00",
            "due_at_0": "2026-01-01",
            "due_at_1": "00:00:00",
            "lines": "[]",
        },
    )
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.context["adminform"].form.errors["amount_due"][0]
    assert not Invoice.objects.filter(number="NEG-1").exists()


def test_admin_form_converts_major_units_and_refuses_extra_decimals(admin_client) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    data = {
        "customer": customer.pk,
        "number": "OK-1",
        "status": "open",
        "currency": "JPY",
        "amount_due": "10.50",
        "due_at_0": "2026-01-01",
        "due_at_1": "00:00:00",
        "lines": "[]",
    }
    response = admin_client.post(reverse("admin:customers_invoice_add"), data)
    assert (
        "JPY amounts have at most 0 decimal places."
        in response.context["adminform"].form.errors["amount_due"]
    )
    response = admin_client.post(reverse("admin:customers_invoice_add"), {**data, "currency": "EUR"})
    assert response.status_code == 302
    assert Invoice.objects.get(number="OK-1").amount_due_minor == 1050


def test_admin_form_refuses_an_invalid_currency(admin_client) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(
        reverse("admin:customers_customer_add"),
        {
            "external_id": "bad-cur",
            "name": "Bad",
            "currency": "EURO",
            "locale": "en",
            "time_zone": "Nowhere/City",
            "contacts-TOTAL_FORMS": "0",
            "contacts-INITIAL_FORMS": "0",
            "payment_methods-TOTAL_FORMS": "0",
            "payment_methods-INITIAL_FORMS": "0",
            "invoices-TOTAL_FORMS": "0",
            "invoices-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "currency" in errors
    assert "is not a known IANA time zone" in errors["time_zone"][0]


def test_paid_invoice_status_and_amount_are_read_only(admin_client) -> None:  # type: ignore[no-untyped-def]
    invoice = InvoiceFactory(status=InvoiceStatus.PAID, amount_due_minor=100, amount_paid_minor=100)
    response = admin_client.get(reverse("admin:customers_invoice_change", args=[invoice.pk]))
    form = response.context["adminform"].form
    assert "status" not in form.fields
    assert "amount_due" not in form.fields


def test_customer_page_shows_only_recent_invoices_and_the_overdue_balance(admin_client) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(currency="EUR")
    now = timezone.now()
    for day in range(15):
        InvoiceFactory(customer=customer, amount_due_minor=1000, due_at=now - timedelta(days=day + 1))
    response = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    content = response.content.decode()
    invoice_inline = next(f for f in response.context["inline_admin_formsets"] if f.opts.model is Invoice)
    assert len(list(invoice_inline)) == 10
    assert "€150.00" in content  # 15 overdue invoices of €10


def test_staff_without_permission_cannot_see_invoices(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    assert client.get(reverse("admin:customers_invoice_changelist")).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    assert client.get(reverse("admin:customers_invoice_changelist")).status_code == 200
