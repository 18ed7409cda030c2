from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from customers.models import (
    Contact,
    ContactRole,
    Customer,
    Invoice,
    InvoiceStatus,
    PaymentMethod,
    PaymentMethodType,
)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust-{n:05d}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda c: f"{c.external_id}@example.com")
    company = "Example Ltd"
    segment = "smb"
    currency = "EUR"
    locale = "en"
    time_zone = "Europe/Paris"


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    customer = factory.SubFactory(CustomerFactory)
    role = ContactRole.BILLING
    name = "Billing desk"
    email = factory.Sequence(lambda n: f"billing{n}@example.com")


class PaymentMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentMethod

    customer = factory.SubFactory(CustomerFactory)
    type = PaymentMethodType.CARD
    brand = "visa"
    last4 = "4242"
    exp_month = 12
    exp_year = factory.LazyFunction(lambda: timezone.now().year + 2)
    gateway_payment_method_id = factory.Sequence(lambda n: f"pm_test_{n}")
    is_default = True


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    number = factory.Sequence(lambda n: f"INV-{n:06d}")
    amount_due_minor = 4900
    amount_paid_minor = 0
    currency = factory.LazyAttribute(lambda i: i.customer.currency)
    status = InvoiceStatus.OPEN
    due_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    lines = factory.LazyAttribute(
        lambda i: [{"description": "Team plan", "quantity": 1, "amount_minor": i.amount_due_minor}]
    )
