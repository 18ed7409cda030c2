"""The payment portal's page at 20,000 customers in dunning (100,000 attempts), against a bare SELECT of the
same rows; and the cost of verifying a link."""

from __future__ import annotations

import os

from django.core import signing
from django.db import connection
from django.test import Client

from bench.harness import Result, count_statements, median_ms, progress
from customers.models import Customer
from dunning.models import DunningCase, PolicyVersion
from dunning.portal.tokens import SALT, portal_link_for, portal_token_read

CUSTOMERS = 20_000
ATTEMPTS_PER_INVOICE = 5


def _populate() -> None:
    """In SQL: the page reads cases, invoices, attempts and payment methods of one customer among many."""
    if os.environ.get("BENCH_FRESH") != "1" and DunningCase.objects.count() == CUSTOMERS:
        progress(f"reusing {CUSTOMERS:,} customers with a case each")
        return
    progress(f"generating {CUSTOMERS:,} customers, cases and {CUSTOMERS * ATTEMPTS_PER_INVOICE:,} attempts")
    version = PolicyVersion.objects.order_by("id").first()
    assert version is not None, "the default policy (a data migration) is missing"
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE dunning_caseevent, dunning_paymentattempt, dunning_dunningcase, customers_invoice, "
            "customers_paymentmethod, customers_customer RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            """
            INSERT INTO customers_customer (external_id, name, email, company, segment, currency, locale,
                time_zone, gateway_customer_id, entitlement_state, created_at, updated_at)
            SELECT 'bench-' || g, 'Customer ' || g, 'c' || g || '@example.com', 'Company', 'smb', 'EUR', 'en',
                'Europe/Paris', '', 'past_due', now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO customers_paymentmethod (customer_id, type, brand, last4, exp_month, exp_year,
                gateway_payment_method_id, is_default, created_at, updated_at)
            SELECT g, 'card', 'visa', '9995', 12, 2030, 'pm_sim_4000000000009995', true, now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
                status, due_at, lines, gateway, gateway_invoice_id, created_at, updated_at)
            SELECT g, 'INV-' || g, 4900, 0, 'EUR', 'open', now() - interval '3 days',
                '[{"description": "Team plan", "quantity": 1, "amount_minor": 3900},
                  {"description": "Extra seat", "quantity": 2, "amount_minor": 1000}]'::jsonb,
                'simulated', '', now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO dunning_dunningcase (invoice_id, customer_id, policy_version_id, state, amount_minor,
                currency, opened_at, next_step_index, retry_count, schedule_shift_seconds, claim_token,
                decline_code, decline_category, needs_staff_review, recovery_channel, created_at, updated_at)
            SELECT g, g, %s, 'open', 4900, 'EUR', now() - interval '3 days', 2, 1, 0, '',
                'insufficient_funds', 'soft', false, '', now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [version.pk, CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO dunning_paymentattempt (invoice_id, case_id, payment_method_id, number, source, status,
                amount_minor, currency, gateway, gateway_reference, decline_processor, decline_code,
                decline_category, message, created_at, completed_at)
            SELECT i, i, i, n, 'retry', 'failed', 4900, 'EUR', 'simulated', 'sim_' || i || '_' || n, 'stripe',
                'insufficient_funds', 'soft', '', now() - (n || ' hours')::interval, now()
            FROM generate_series(1, %s) AS i, generate_series(1, %s) AS n
            """,
            [CUSTOMERS, ATTEMPTS_PER_INVOICE],
        )
        for table in (
            "customers_customer",
            "customers_invoice",
            "dunning_dunningcase",
            "dunning_paymentattempt",
        ):
            cursor.execute(f"ANALYZE {table}")


def _bare_select(customer_id: int) -> None:
    """What the page shows, in one hand-written query: cases with invoices, card, latest decline message."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, i.number, i.amount_due_minor - i.amount_paid_minor, i.lines, i.due_at,
                   pm.brand, pm.last4, pm.exp_month, pm.exp_year,
                   (SELECT d.customer_message FROM dunning_paymentattempt a
                      JOIN dunning_declinecode d ON d.processor = a.decline_processor AND d.code = a.decline_code
                     WHERE a.invoice_id = i.id AND a.status = 'failed'
                     ORDER BY a.created_at DESC, a.id DESC LIMIT 1)
            FROM dunning_dunningcase c
            JOIN customers_invoice i ON i.id = c.invoice_id
            LEFT JOIN customers_paymentmethod pm ON pm.customer_id = c.customer_id AND pm.is_default
            WHERE c.customer_id = %s AND c.state IN ('open', 'paused', 'exhausted', 'handed_off')
              AND i.status = 'open' AND i.amount_paid_minor < i.amount_due_minor
            ORDER BY i.due_at, c.id
            """,
            [customer_id],
        )
        cursor.fetchall()


def run() -> list[Result]:
    _populate()
    customer = Customer.objects.get(external_id=f"bench-{CUSTOMERS // 2}")
    case = DunningCase.objects.get(customer=customer)
    path = (
        "/portal/"
        + portal_link_for(customer_id=customer.pk, invoice_id=case.invoice_id, source="email").split(
            "/portal/"
        )[1]
    )
    token = path.split("/")[2]
    client = Client()

    def page():  # type: ignore[no-untyped-def]
        response = client.get(path)
        assert response.status_code == 200, response.status_code
        return response

    page()  # the first view writes the visit event; later ones within half an hour only read
    results = [
        Result(
            workload="portal page (GET), 1 invoice in dunning",
            ours=median_ms(page, repeat=51),
            baseline=median_ms(lambda: _bare_select(customer.pk), repeat=51),
            unit="ms",
            baseline_label="one hand-written SELECT",
            note=f"{count_statements(page)} queries, full request cycle in-process (template, CSRF, headers)",
        ),
        Result(
            workload="verify a link (signature, age, version)",
            ours=median_ms(lambda: portal_token_read(token), repeat=201) * 1000,
            baseline=median_ms(lambda: signing.loads(token, salt=SALT), repeat=201) * 1000,
            unit="µs",
            baseline_label="signing.loads alone",
            note="one indexed read of the token version",
        ),
    ]
    return results
