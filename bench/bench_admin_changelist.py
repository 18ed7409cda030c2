"""The invoice admin changelist at a million invoices, against a bare SELECT of the same columns."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from bench.harness import Result, count_statements, median_ms, progress
from customers.models import Customer, Invoice

CUSTOMERS = 100_000
INVOICES = 1_000_000


def _populate() -> None:
    """Generate the rows in SQL: a million ORM saves would take longer than the benchmark itself."""
    if (
        os.environ.get("BENCH_FRESH") != "1"
        and Customer.objects.count() == CUSTOMERS
        and Invoice.objects.count() == INVOICES
    ):
        progress(f"reusing {CUSTOMERS:,} customers and {INVOICES:,} invoices")
        return
    progress(f"generating {CUSTOMERS:,} customers and {INVOICES:,} invoices")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE customers_invoice, customers_customer RESTART IDENTITY CASCADE")
        cursor.execute(
            """
            INSERT INTO customers_customer (external_id, name, email, company, segment, currency, locale,
                time_zone, gateway_customer_id, entitlement_state, created_at, updated_at)
            SELECT 'bench-' || g, 'Customer ' || g, 'c' || g || '@example.com', 'Company ' || (g %% 5000),
                (ARRAY['self_serve','smb','mid_market','enterprise'])[1 + g %% 4],
                (ARRAY['USD','EUR','GBP','JPY'])[1 + g %% 4], 'en', 'UTC', '', 'active', now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
                status, due_at, lines, gateway, gateway_invoice_id, created_at, updated_at)
            SELECT 1 + g %% %s, 'INV-' || lpad(g::text, 8, '0'), 1000 + g %% 90000,
                CASE WHEN g %% 10 < 8 THEN 1000 + g %% 90000 ELSE 0 END,
                (ARRAY['USD','EUR','GBP','JPY'])[1 + (1 + g %% %s) %% 4],
                CASE WHEN g %% 10 < 8 THEN 'paid' WHEN g %% 10 = 8 THEN 'open' ELSE 'void' END,
                now() - (g %% 730) * interval '1 day' - (g %% 86400) * interval '1 second',
                '[]'::jsonb, 'simulated', 'in_' || g, now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS, CUSTOMERS, INVOICES],
        )
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("ANALYZE customers_invoice")


def _bare_select() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.id, i.number, i.amount_due_minor, i.amount_paid_minor, i.currency, i.status, i.due_at,
                   i.gateway, c.id, c.name
            FROM customers_invoice i JOIN customers_customer c ON c.id = i.customer_id
            ORDER BY i.due_at DESC, i.id DESC LIMIT 100
            """
        )
        cursor.fetchall()


def run() -> list[Result]:
    _populate()
    user_model = get_user_model()
    admin_user = user_model.objects.filter(
        username="bench-admin"
    ).first() or user_model.objects.create_superuser("bench-admin", "bench@example.com", "bench-password")
    client = Client()
    client.force_login(admin_user)
    results: list[Result] = []
    baseline = median_ms(_bare_select)
    pages = [
        ("invoice changelist, 1M rows", "/admin/customers/invoice/"),
        ("… filtered status=open (100k rows)", "/admin/customers/invoice/?status__exact=open"),
        ("… exact search by number", "/admin/customers/invoice/?q=INV-00500000"),
        ("… date drill-down to one month", "/admin/customers/invoice/?due_at__year=2026&due_at__month=3"),
    ]
    for label, url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        statements = count_statements(lambda url=url: client.get(url))
        ours = median_ms(lambda url=url: client.get(url))
        results.append(
            Result(
                workload=label,
                ours=ours,
                baseline=baseline,
                unit="ms",
                baseline_label="bare SELECT … LIMIT 100",
                note=f"{statements} queries per page",
            )
        )
    return results
