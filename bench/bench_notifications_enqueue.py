"""Queueing 1,000 dunning emails in one call (what one tick batch asks for), against a naive loop that
queries and inserts per message."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from django.db import connection, transaction

from bench.harness import Result, median_ms, progress
from customers.models import Contact, Customer, Invoice, PaymentMethod
from notifications.models import MessageTemplate, Notification
from notifications.services import MessageRequest, notifications_enqueue

CUSTOMERS = 1_000
NOON = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


def _populate() -> None:
    if os.environ.get("BENCH_FRESH") != "1" and Customer.objects.count() == CUSTOMERS:
        progress(f"reusing {CUSTOMERS:,} customers")
        return
    progress(f"generating {CUSTOMERS:,} customers with contacts, cards and invoices")
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_notification, customers_contact, customers_paymentmethod, customers_invoice, "
            "customers_customer RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            """
            INSERT INTO customers_customer (external_id, name, email, company, segment, currency, locale,
                time_zone, gateway_customer_id, entitlement_state, created_at, updated_at)
            SELECT 'bench-' || g, 'Customer ' || g, 'c' || g || '@example.com', 'Company ' || g, 'smb', 'EUR',
                'en', 'UTC', '', 'past_due', now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO customers_contact (customer_id, role, name, email, created_at)
            SELECT id, 'billing', 'Billing ' || id, 'billing' || id || '@example.com', now() FROM customers_customer
            """
        )
        cursor.execute(
            """
            INSERT INTO customers_paymentmethod (customer_id, type, brand, last4, exp_month, exp_year,
                gateway_payment_method_id, is_default, created_at, updated_at)
            SELECT id, 'card', 'visa', '4242', 8, 2027, 'pm_' || id, true, now(), now() FROM customers_customer
            """
        )
        cursor.execute(
            """
            INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
                status, due_at, lines, gateway, gateway_invoice_id, created_at, updated_at)
            SELECT id, 'INV-' || id, 4900, 0, 'EUR', 'open', now(),
                '[{"description": "Team plan", "quantity": 1, "amount_minor": 4900}]'::jsonb, 'simulated',
                'in_' || id, now(), now()
            FROM customers_customer
            """
        )
        cursor.execute("ANALYZE")


def _requests(step: str) -> list[MessageRequest]:
    invoices = dict(Invoice.objects.values_list("customer_id", "pk"))
    return [
        MessageRequest(
            customer_id=customer_id,
            template_key="failure_1",
            case_ref=customer_id,
            step_ref=step,
            invoice_id=invoices[customer_id],
            context={"portal_url": "https://billing.example.com/portal/x/", "case_day": 1},
        )
        for customer_id in Customer.objects.values_list("pk", flat=True)
    ]


def _naive(step: str) -> None:
    """One message at a time, as a straightforward implementation would: a handful of queries each."""
    template = MessageTemplate.objects.get(key="failure_1", locale="en")
    with transaction.atomic():
        for customer in Customer.objects.all():
            contact = Contact.objects.filter(customer=customer, role="billing").first()
            invoice = Invoice.objects.filter(customer=customer, status="open").first()
            PaymentMethod.objects.filter(customer=customer, is_default=True).first()
            if Notification.objects.filter(case_ref=customer.pk, step_ref=step).exists():
                continue
            Notification.objects.create(
                customer=customer,
                invoice=invoice,
                case_ref=customer.pk,
                step_ref=step,
                template_key="failure_1",
                recipient=contact.email if contact else customer.email,
                subject=template.subject,
                body_text=template.body_text,
                message_key=f"{customer.pk}:{step}",
            )
        transaction.set_rollback(True)


def run() -> list[Result]:
    _populate()
    statements: list[str] = []

    batch = _requests("bench:1")

    def ours() -> None:
        # Rolled back each time: every run sees the same tables (and queues no dispatch task).
        with transaction.atomic():
            created = notifications_enqueue(requests=batch, now=NOON)
            transaction.set_rollback(True)
        assert len(created) == CUSTOMERS, len(created)

    def record(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements.append(sql)
        return execute(sql, params, many, context)

    requests = _requests("bench:count")
    started = time.perf_counter()
    with transaction.atomic(), connection.execute_wrapper(record):
        notifications_enqueue(requests=requests, now=NOON)
        transaction.set_rollback(True)
    progress(f"one call: {len(statements)} statements, {(time.perf_counter() - started) * 1000:.0f} ms")

    ours_ms = median_ms(ours, repeat=5, warmup=1)
    naive_ms = median_ms(lambda: _naive("naive:1"), repeat=3, warmup=1)
    return [
        Result(
            workload=f"enqueue {CUSTOMERS:,} emails in one call",
            ours=ours_ms,
            baseline=naive_ms,
            unit="ms",
            baseline_label="naive per-message ORM loop",
            note=f"{len(statements)} SQL statements in total (constant in the batch size)",
        ),
        Result(
            workload="… per message",
            ours=ours_ms / CUSTOMERS,
            baseline=naive_ms / CUSTOMERS,
            unit="ms",
            baseline_label="naive loop",
            note="rendering included (subject, text and HTML per recipient)",
        ),
    ]
