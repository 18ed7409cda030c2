from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from customers.actors import Actor
from customers.models import AuditEvent, Customer, EntitlementState, InvoiceStatus
from customers.services import (
    customer_create,
    customer_set_entitlement,
    invoice_close,
    payment_method_set_default,
)
from tests.factories import CustomerFactory, InvoiceFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


def test_paying_an_invoice_is_audited_and_happens_once() -> None:
    invoice = InvoiceFactory(amount_due_minor=4900)
    assert invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=SYSTEM, reason="card charged")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.amount_paid_minor == 4900
    assert invoice.paid_at is not None
    # A duplicate report changes nothing and writes no second audit row.
    assert not invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=SYSTEM)
    events = AuditEvent.objects.filter(invoice=invoice, action="invoice.paid")
    assert [(e.actor_label, e.reason) for e in events] == [("test", "card charged")]


def test_final_states_are_final() -> None:
    invoice = InvoiceFactory()
    assert invoice_close(invoice=invoice, status=InvoiceStatus.PAID, actor=SYSTEM)
    # A late "void" or "uncollectible" can never move a paid invoice.
    assert not invoice_close(invoice=invoice, status=InvoiceStatus.VOID, actor=SYSTEM)
    assert not invoice_close(invoice=invoice, status=InvoiceStatus.UNCOLLECTIBLE, actor=SYSTEM)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_only_final_statuses_close_an_invoice() -> None:
    with pytest.raises(ValueError, match="not a final invoice status"):
        invoice_close(invoice=InvoiceFactory(), status=InvoiceStatus.OPEN, actor=SYSTEM)


def test_entitlement_changes_are_audited_with_from_and_to() -> None:
    customer = CustomerFactory()
    assert customer_set_entitlement(
        customer=customer, state=EntitlementState.PAST_DUE, actor=SYSTEM, reason="invoice failed"
    )
    assert not customer_set_entitlement(customer=customer, state=EntitlementState.PAST_DUE, actor=SYSTEM)
    customer.refresh_from_db()
    assert customer.entitlement_state == EntitlementState.PAST_DUE
    event = AuditEvent.objects.get(customer=customer, action="customer.entitlement_changed")
    assert event.details == {"from": "active", "to": "past_due"}
    assert event.reason == "invoice failed"


def test_customer_create_validates_before_writing() -> None:
    with pytest.raises(ValidationError):
        customer_create(actor=SYSTEM, external_id="c1", name="C", currency="EUR", time_zone="Mars/Olympus")
    assert not Customer.objects.exists()
    customer = customer_create(
        actor=SYSTEM, external_id="c1", name="C", currency="EUR", time_zone="Asia/Tokyo"
    )
    assert AuditEvent.objects.filter(customer=customer, action="customer.created").exists()


def test_setting_a_default_payment_method_clears_the_old_one() -> None:
    customer = CustomerFactory()
    old = PaymentMethodFactory(customer=customer, is_default=True)
    new = PaymentMethodFactory(customer=customer, is_default=False)
    payment_method_set_default(payment_method=new, actor=SYSTEM)
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.is_default, new.is_default) == (False, True)


def test_saving_a_new_payment_method_makes_it_the_default_and_keeps_the_old_one() -> None:
    from customers.services import payment_method_save

    customer = CustomerFactory()
    old = PaymentMethodFactory(customer=customer, is_default=True)
    new, created = payment_method_save(
        customer=customer,
        actor=SYSTEM,
        gateway_payment_method_id="pm_new",
        brand="visa",
        last4="4242",
        exp_month=1,
        exp_year=2031,
    )
    old.refresh_from_db()
    assert created and new.is_default and not old.is_default
    # The card updater sends the same method with a new expiry: updated in place, not duplicated.
    again, created = payment_method_save(
        customer=customer,
        actor=SYSTEM,
        gateway_payment_method_id="pm_new",
        brand="visa",
        last4="4242",
        exp_month=2,
        exp_year=2033,
    )
    assert (again.pk, created, again.exp_year) == (new.pk, False, 2033)
    assert AuditEvent.objects.filter(customer=customer, action="payment_method.updated").count() == 1


def test_a_payment_method_with_bad_details_is_refused() -> None:
    from customers.services import payment_method_save

    with pytest.raises(ValidationError):
        payment_method_save(
            customer=CustomerFactory(),
            actor=SYSTEM,
            gateway_payment_method_id="pm_x",
            last4="12",
            exp_month=13,
        )


def test_a_part_payment_raises_the_amount_paid_but_never_to_or_past_the_amount_due() -> None:
    from customers.services import invoice_payment_record

    actor = Actor.system("test")
    invoice = InvoiceFactory(amount_due_minor=4900)
    assert invoice_payment_record(
        invoice=invoice, amount_minor=1900, actor=actor, details={"reference": "r1"}
    )
    assert (invoice.amount_paid_minor, invoice.status) == (1900, InvoiceStatus.OPEN)
    # The whole remainder (3000) or more is not a part payment: the invoice would be paid (invoice_close).
    assert not invoice_payment_record(invoice=invoice, amount_minor=3000, actor=actor)
    assert not invoice_payment_record(invoice=invoice, amount_minor=5000, actor=actor)
    assert invoice.amount_paid_minor == 1900
    audit = AuditEvent.objects.get(action="invoice.payment_recorded")
    assert (audit.invoice_id, audit.details["amount_minor"], audit.details["reference"]) == (
        invoice.pk,
        1900,
        "r1",
    )
    paid = InvoiceFactory(status=InvoiceStatus.PAID, amount_due_minor=100, amount_paid_minor=100)
    assert not invoice_payment_record(invoice=paid, amount_minor=1, actor=actor)
    with pytest.raises(ValueError):
        invoice_payment_record(invoice=invoice, amount_minor=0, actor=actor)
