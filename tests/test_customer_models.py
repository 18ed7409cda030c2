"""Database constraints back the model rules: bad data is refused even when forms are bypassed."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from customers.models import Customer, Invoice, PaymentMethod
from tests.factories import CustomerFactory, InvoiceFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db


def test_invalid_currency_is_refused_by_model_validation() -> None:
    customer = CustomerFactory.build(currency="EURO")
    with pytest.raises(ValidationError) as error:
        customer.full_clean()
    assert "ISO 4217" in str(error.value.message_dict["currency"])


def test_lower_case_currency_gets_a_hint() -> None:
    customer = CustomerFactory.build(currency="eur")
    with pytest.raises(ValidationError) as error:
        customer.full_clean()
    assert "Use upper case" in str(error.value.message_dict["currency"])


def test_invalid_currency_is_refused_by_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(external_id="x1", name="X", currency="XXX")


def test_unknown_time_zone_gets_a_clear_error() -> None:
    customer = CustomerFactory.build(time_zone="Europe/Atlantis")
    with pytest.raises(ValidationError) as error:
        customer.full_clean()
    assert error.value.message_dict["time_zone"] == [
        "'Europe/Atlantis' is not a known IANA time zone (for example Europe/Paris, America/New_York, UTC)."
    ]


def test_empty_external_id_is_refused_by_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(external_id="", name="Nobody", currency="EUR")


def test_negative_amount_is_refused_by_model_validation() -> None:
    invoice = InvoiceFactory.build(customer=CustomerFactory(), amount_due_minor=-1)
    with pytest.raises(ValidationError) as error:
        invoice.full_clean()
    assert "invoice_amount_due_non_negative" in str(error.value)


def test_negative_amount_is_refused_by_the_database() -> None:
    customer = CustomerFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceFactory(customer=customer, amount_due_minor=-500)
    assert not Invoice.objects.exists()


def test_overpayment_is_refused_by_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceFactory(amount_due_minor=100, amount_paid_minor=101)


def test_invoice_currency_is_checked_by_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceFactory(currency="ABC")


def test_at_most_one_default_payment_method_per_customer() -> None:
    customer = CustomerFactory()
    PaymentMethodFactory(customer=customer, is_default=True)
    PaymentMethodFactory(customer=customer, is_default=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethodFactory(customer=customer, is_default=True)
    assert PaymentMethod.objects.filter(customer=customer, is_default=True).count() == 1
    # Another customer has a default of its own.
    PaymentMethodFactory(is_default=True)


def test_gateway_invoice_id_is_unique_per_gateway_only() -> None:
    InvoiceFactory(gateway="stripe", gateway_invoice_id="in_1")
    InvoiceFactory(gateway="other", gateway_invoice_id="in_1")
    InvoiceFactory(gateway="stripe", gateway_invoice_id="")
    InvoiceFactory(gateway="stripe", gateway_invoice_id="")
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceFactory(gateway="stripe", gateway_invoice_id="in_1")


def test_expiry_month_out_of_range_is_refused_by_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethodFactory(exp_month=13)


def test_last4_must_be_four_digits() -> None:
    method = PaymentMethodFactory.build(customer=CustomerFactory(), last4="42a2")
    with pytest.raises(ValidationError) as error:
        method.full_clean()
    assert "exactly four digits" in str(error.value.message_dict["last4"])


def test_card_expiry_runs_to_the_end_of_its_month() -> None:
    from datetime import datetime

    method = PaymentMethodFactory.build(exp_month=3, exp_year=2027)
    assert not method.expires_before(datetime(2027, 3, 31, tzinfo=UTC))
    assert method.expires_before(datetime(2027, 4, 1, tzinfo=UTC))
