"""notifications_enqueue: recipients, idempotency, rendering, and a constant number of statements."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import ContactRole
from notifications.models import MessageTemplate, Notification, NotificationStatus, ReasonCode
from notifications.services import (
    MessageRequest,
    notifications_cancel_for_cases,
    notifications_enqueue,
    suppressed_address_add,
)
from tests.factories import ContactFactory, CustomerFactory, InvoiceFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db

# Noon in Paris: outside quiet hours for the factories' default time zone.
NOON = datetime(2025, 6, 10, 10, 0, tzinfo=UTC)


def _request(customer, case_ref: int = 1, step_ref: str = "v1:1", **kwargs) -> MessageRequest:  # type: ignore[no-untyped-def]
    return MessageRequest(
        customer_id=customer.pk,
        template_key=kwargs.pop("template_key", "failure_1"),
        case_ref=case_ref,
        step_ref=step_ref,
        **kwargs,
    )


def test_billing_contacts_receive_the_message_first() -> None:
    customer = CustomerFactory()
    ContactFactory(customer=customer, role=ContactRole.BILLING, email="Pay@Example.com", name="Pat")
    ContactFactory(customer=customer, role=ContactRole.TECHNICAL, email="tech@example.com")
    rows = notifications_enqueue(requests=[_request(customer, context={"case_day": 2})], now=NOON)
    assert [(r.recipient, r.recipient_name, r.status) for r in rows] == [("pay@example.com", "Pat", "queued")]


def test_from_the_escalation_day_every_contact_and_the_customer_are_mailed(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_ESCALATION_DAY = 7
    customer = CustomerFactory(email="owner@example.com")
    ContactFactory(customer=customer, role=ContactRole.BILLING, email="pay@example.com")
    ContactFactory(customer=customer, role=ContactRole.TECHNICAL, email="tech@example.com")
    rows = notifications_enqueue(requests=[_request(customer, context={"case_day": 7})], now=NOON)
    assert sorted(r.recipient for r in rows) == ["owner@example.com", "pay@example.com", "tech@example.com"]


def test_the_customer_email_is_used_when_there_is_no_billing_contact() -> None:
    customer = CustomerFactory(email="owner@example.com")
    rows = notifications_enqueue(requests=[_request(customer)], now=NOON)
    assert [r.recipient for r in rows] == ["owner@example.com"]


def test_a_customer_without_any_address_gets_a_skipped_row_saying_so() -> None:
    customer = CustomerFactory(email="")
    [row] = notifications_enqueue(requests=[_request(customer)], now=NOON)
    assert row.status == NotificationStatus.SKIPPED
    assert row.reason_code == ReasonCode.NO_RECIPIENT


def test_a_repeated_call_creates_nothing_new() -> None:
    customer = CustomerFactory()
    ContactFactory(customer=customer)
    first = notifications_enqueue(requests=[_request(customer)], now=NOON)
    second = notifications_enqueue(requests=[_request(customer)], now=NOON)
    assert len(first) == 1
    assert second == []
    assert Notification.objects.count() == 1


def test_without_a_case_the_key_is_the_customer_and_step() -> None:
    customer = CustomerFactory()
    request = _request(
        customer, case_ref=None, step_ref="expiry30:pm_1:2025-07", template_key="predunning_expiry_30d"
    )
    assert len(notifications_enqueue(requests=[request], now=NOON)) == 1
    assert notifications_enqueue(requests=[request], now=NOON) == []
    other = CustomerFactory()
    assert (
        len(
            notifications_enqueue(
                requests=[_request(other, case_ref=None, step_ref="expiry30:pm_1:2025-07")], now=NOON
            )
        )
        == 1
    )


def test_undeliverable_addresses_are_recorded_as_skipped_and_others_still_get_it() -> None:
    customer = CustomerFactory(email="owner@example.com")
    ContactFactory(customer=customer, email="gone@example.com")
    ContactFactory(customer=customer, email="ok@example.com")
    suppressed_address_add(email="GONE@example.com", reason="hard_bounce")
    rows = {r.recipient: r for r in notifications_enqueue(requests=[_request(customer)], now=NOON)}
    assert rows["gone@example.com"].status == NotificationStatus.SKIPPED
    assert rows["gone@example.com"].reason_code == ReasonCode.UNDELIVERABLE
    assert "hard_bounce" in rows["gone@example.com"].status_reason
    assert rows["ok@example.com"].status == NotificationStatus.QUEUED


def test_the_message_is_rendered_with_invoice_card_and_dunning_values() -> None:
    customer = CustomerFactory(name="Ada Lovelace", company="Acme", currency="EUR", locale="en")
    ContactFactory(customer=customer, name="Ada", email="ada@example.com")
    PaymentMethodFactory(customer=customer, brand="visa", last4="4242", exp_month=8, exp_year=2027)
    invoice = InvoiceFactory(customer=customer, number="INV-77", amount_due_minor=123450, currency="EUR")
    request = _request(
        customer,
        invoice_id=invoice.pk,
        template_key="failure_3",
        context={
            "decline_reason": "Your bank declined: insufficient funds.",
            "access_affected_on": date(2025, 6, 17),
            "portal_url": "https://pay.example.com/portal/tok123/",
            "case_day": 5,
        },
    )
    [row] = notifications_enqueue(requests=[request], now=NOON)
    assert row.subject == "Urgent: your Example SaaS access will be limited on June 17, 2025"
    assert "€1,234.50" in row.body_text and "INV-77" in row.body_text
    assert "insufficient funds" in row.body_text
    assert "https://pay.example.com/portal/tok123/" in row.body_text
    assert 'href="https://pay.example.com/portal/tok123/"' in row.body_html
    assert row.body_text.startswith("Hi Ada,")


def test_the_customers_locale_is_used_with_a_fallback_to_the_default() -> None:
    MessageTemplate.objects.create(
        key="failure_1",
        locale="fr",
        subject="Un souci avec votre paiement de {{ amount }}",
        body_text="Bonjour {{ contact_name }}",
    )
    french = CustomerFactory(locale="fr-CA", currency="EUR")
    german = CustomerFactory(locale="de", currency="EUR")
    invoice = InvoiceFactory(customer=french, amount_due_minor=4900)
    german_invoice = InvoiceFactory(customer=german, amount_due_minor=4900)
    rows = notifications_enqueue(
        requests=[
            _request(french, case_ref=1, invoice_id=invoice.pk),
            _request(german, case_ref=2, invoice_id=german_invoice.pk),
        ],
        now=NOON,
    )
    by_customer = {r.customer_id: r for r in rows}
    assert by_customer[french.pk].locale == "fr"
    assert by_customer[french.pk].subject == "Un souci avec votre paiement de 49,00\xa0€"
    assert by_customer[german.pk].locale == "en"
    # An English fallback reads as English, amounts included.
    assert "collect €49.00 for invoice" in by_customer[german.pk].body_text


def test_an_unknown_template_fails_the_row_without_stopping_the_batch() -> None:
    good, bad = CustomerFactory(), CustomerFactory()
    rows = notifications_enqueue(
        requests=[_request(good, case_ref=1), _request(bad, case_ref=2, template_key="no_such_template")],
        now=NOON,
    )
    by_customer = {r.customer_id: r for r in rows}
    assert by_customer[good.pk].status == NotificationStatus.QUEUED
    assert by_customer[bad.pk].status == NotificationStatus.FAILED
    assert by_customer[bad.pk].reason_code == ReasonCode.RENDER_ERROR


def test_recovery_cancels_queued_messages_of_the_case_only() -> None:
    customer = CustomerFactory()
    notifications_enqueue(
        requests=[_request(customer, case_ref=1, step_ref="a"), _request(customer, case_ref=2, step_ref="a")],
        now=NOON,
    )
    assert notifications_cancel_for_cases(case_refs=[1], reason="payment recovered") == 1
    assert Notification.objects.get(case_ref=1).status == NotificationStatus.SUPPRESSED
    assert Notification.objects.get(case_ref=1).status_reason == "payment recovered"
    assert Notification.objects.get(case_ref=2).status == NotificationStatus.QUEUED


def test_dispatch_is_scheduled_after_commit(django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        notifications_enqueue(requests=[_request(customer)], now=NOON)
    assert len(callbacks) == 1  # nothing is sent before the dunning step's transaction commits
    assert Notification.objects.get().status == NotificationStatus.QUEUED


def _batch(n: int, offset: int) -> list[MessageRequest]:
    requests = []
    for i in range(n):
        customer = CustomerFactory()
        ContactFactory(customer=customer)
        ContactFactory(customer=customer, role=ContactRole.TECHNICAL)
        PaymentMethodFactory(customer=customer)
        invoice = InvoiceFactory(customer=customer)
        requests.append(
            _request(
                customer, case_ref=offset + i, invoice_id=invoice.pk, context={"case_day": 8 if i % 2 else 1}
            )
        )
    return requests


def test_the_number_of_statements_does_not_grow_with_the_batch(django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    small, large = _batch(5, 100), _batch(10, 200)
    with CaptureQueriesContext(connection) as first:
        notifications_enqueue(requests=small, now=NOON)
    with CaptureQueriesContext(connection) as second:
        created = notifications_enqueue(requests=large, now=NOON)
    assert len(created) == 10 + 5 * 2  # escalated customers also have a technical contact
    assert len(first) == len(second), "\n".join(q["sql"] for q in second.captured_queries)
    assert len(second) <= 9  # seven reads, one insert, one read-back
