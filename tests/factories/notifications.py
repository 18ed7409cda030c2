from __future__ import annotations

import factory
from django.utils import timezone

from notifications.models import (
    Banner,
    BannerSeverity,
    Notification,
    NotificationStatus,
    StaffTask,
    WebhookEndpoint,
)
from tests.factories.customers import CustomerFactory


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    customer = factory.SubFactory(CustomerFactory)
    case_ref = factory.Sequence(lambda n: 10_000 + n)
    step_ref = "v1:1"
    template_key = "failure_1"
    locale = "en"
    recipient = factory.LazyAttribute(lambda n: n.customer.email.lower())
    recipient_name = factory.LazyAttribute(lambda n: n.customer.name)
    subject = "We noticed an issue with your payment"
    body_text = "Hi,\n\nPlease update your card.\n"
    body_html = "<p>Hi,</p><p>Please update your card.</p>"
    status = NotificationStatus.QUEUED
    message_key = factory.LazyAttribute(lambda n: f"{n.case_ref}:{n.step_ref}")
    created_at = factory.LazyFunction(timezone.now)
    send_after = factory.LazyFunction(timezone.now)


class BannerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Banner

    customer = factory.SubFactory(CustomerFactory)
    case_ref = factory.Sequence(lambda n: 20_000 + n)
    message = "Your last payment failed. Update your card to keep your account active."
    severity = BannerSeverity.WARNING
    cta_url = "https://billing.example.com/portal/abc/"


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEndpoint

    url = "https://hooks.example.com/dunning"
    secret = factory.Sequence(lambda n: f"whsec_test_secret_{n}")
    event_types = factory.LazyFunction(lambda: ["case.opened", "payment.recovered", "notification.sent"])


class StaffTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffTask

    customer = factory.SubFactory(CustomerFactory)
    title = factory.Sequence(lambda n: f"Call customer about invoice {n}")
    details = "Three retries failed."
