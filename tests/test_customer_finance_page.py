"""The customer page for finance: balances, open cases, last messages with opens and clicks, portal visits,
read-only payment methods, and an account history. A fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.actors import Actor
from customers.models import PaymentMethod
from dunning.portal.services import portal_visit_record
from dunning.portal.tokens import LinkSource, PortalLink
from dunning.services.cases import invoice_payment_failed
from dunning.services.staff import case_record_offline_payment
from notifications.models import NotificationStatus
from tests.factories import CustomerFactory, InvoiceFactory, NotificationFactory, failed_invoice

pytestmark = pytest.mark.django_db

STAFF = Actor.system("test")


def _visit(customer_id: int, case_id: int) -> None:
    link = PortalLink(customer_id=customer_id, invoice_id=None, version=1, source=LinkSource.EMAIL)
    portal_visit_record(link=link, case_ids=[case_id])


def test_the_page_shows_balances_open_cases_messages_and_portal_visits(admin_client) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(currency="EUR")
    case, invoice, _ = failed_invoice(customer=customer, amount_minor=10_000)
    case_record_offline_payment(case=case, actor=STAFF, reference="part", amount_minor=4_000)
    InvoiceFactory(customer=customer, amount_due_minor=2_500, due_at=timezone.now() + timedelta(days=10))
    opened = timezone.now() - timedelta(hours=2)
    NotificationFactory(
        customer=customer,
        case_ref=case.pk,
        status=NotificationStatus.SENT,
        sent_at=opened - timedelta(hours=1),
        opened_at=opened,
        clicked_at=opened + timedelta(minutes=3),
    )
    _visit(customer.pk, case.pk)

    response = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    content = response.content.decode()
    dunning = response.context["dunning"]
    assert [c.pk for c in dunning.open_cases] == [case.pk]
    assert "€60.00" in content and "(part paid)" in content  # left to pay on the case
    assert "€85.00" in content  # open balance: 60 overdue + 25 not yet due
    assert len(dunning.messages) == 1
    assert timezone.localtime(opened).strftime("%Y-%m-%d %H:%M") in content  # opened
    assert [v.case_id for v in dunning.portal_visits] == [case.pk]
    assert "A link in an email" in content


def test_payment_methods_are_read_only_and_do_not_widen_the_page(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, method = failed_invoice()
    response = admin_client.get(reverse("admin:customers_customer_change", args=[case.customer_id]))
    inline = next(f for f in response.context["inline_admin_formsets"] if f.opts.model is PaymentMethod)
    assert not inline.has_add_permission and not inline.has_change_permission
    assert set(inline.formset.form.base_fields) == set()  # nothing editable in the inline
    assert f"•••• {method.last4}" in response.content.decode()
    change = admin_client.get(reverse("admin:customers_paymentmethod_change", args=[method.pk]))
    editable = set(change.context["adminform"].form.fields)
    assert not editable & {"brand", "last4", "exp_month", "exp_year", "gateway_payment_method_id", "type"}


def test_the_customer_page_runs_a_fixed_number_of_queries(admin_client) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()

    def add(count: int) -> None:
        for _ in range(count):
            invoice = InvoiceFactory(customer=customer, gateway="simulated")
            case = invoice_payment_failed(invoice=invoice, actor=STAFF, decline_code="insufficient_funds")
            assert case is not None
            NotificationFactory(customer=customer, case_ref=case.pk, status=NotificationStatus.SENT)
            _visit(customer.pk, case.pk)

    def queries() -> int:
        url = reverse("admin:customers_customer_change", args=[customer.pk])
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured.captured_queries)

    add(2)
    small = queries()
    add(2)
    assert queries() == small


def test_history_shows_the_account_audit_log(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    case_record_offline_payment(case=case, actor=STAFF, reference="wire 5")
    history = admin_client.get(reverse("admin:customers_customer_history", args=[case.customer_id]))
    content = history.content.decode()
    assert "invoice.paid" in content and "customer.entitlement_changed" in content
    assert "System: test" in content
