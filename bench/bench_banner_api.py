"""The banner API at 100,000 customers and 20,000 banners, against a bare indexed SELECT of the same rows."""

from __future__ import annotations

import os

from django.db import connection
from django.test import Client

from bench.harness import Result, count_statements, median_ms, progress
from customers.actors import Actor
from customers.models import Customer
from notifications.models import ApiKey, Banner
from notifications.services import api_key_create, banner_token_for

CUSTOMERS = 100_000
BANNERS = 20_000  # one customer in five has an open case; half of those banners are cleared


def _populate() -> None:
    if (
        os.environ.get("BENCH_FRESH") != "1"
        and Customer.objects.count() == CUSTOMERS
        and Banner.objects.count() == BANNERS
    ):
        progress(f"reusing {CUSTOMERS:,} customers and {BANNERS:,} banners")
        return
    progress(f"generating {CUSTOMERS:,} customers and {BANNERS:,} banners")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE notifications_banner, customers_customer RESTART IDENTITY CASCADE")
        cursor.execute(
            """
            INSERT INTO customers_customer (external_id, name, email, company, segment, currency, locale,
                time_zone, gateway_customer_id, entitlement_state, created_at, updated_at)
            SELECT 'bench-' || g, 'Customer ' || g, 'c' || g || '@example.com', 'Company ' || g, 'smb', 'EUR',
                'en', 'UTC', '', 'active', now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO notifications_banner (customer_id, case_ref, message, severity, cta_url, cta_label,
                active, created_at, updated_at)
            SELECT 1 + (g * 5) %% %s, g, 'Your last payment failed. Update your card to keep access.',
                'warning', 'https://billing.example.com/portal/t' || g || '/', 'Update payment method',
                g %% 2 = 0, now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [CUSTOMERS, BANNERS],
        )
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("ANALYZE notifications_banner")


def _bare_select(external_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT b.id, b.message, b.severity, b.cta_url, b.cta_label, b.updated_at
            FROM notifications_banner b JOIN customers_customer c ON c.id = b.customer_id
            WHERE c.external_id = %s AND b.active
            """,
            [external_id],
        )
        cursor.fetchall()


def run() -> list[Result]:
    _populate()
    ApiKey.objects.all().delete()
    _, token = api_key_create(name="bench", actor=Actor.system("bench"))
    client = Client()
    # bench-10 has an active banner (g=2 → customer 11); bench-7 has none; ghost does not exist.
    with_banner = "bench-11"
    assert Banner.objects.filter(customer__external_id=with_banner, active=True).exists()
    results: list[Result] = []
    for label, external_id in [
        ("banner API, customer with a banner", with_banner),
        ("… customer without banners", "bench-7"),
        ("… unknown customer", "ghost"),
    ]:

        def call(external_id: str = external_id):  # type: ignore[no-untyped-def]
            response = client.get(
                "/api/v1/banners/", {"customer": external_id}, HTTP_AUTHORIZATION=f"Bearer {token}"
            )
            assert response.status_code == 200, response.status_code
            return response

        call()  # last_used_at written once; later calls are reads only
        statements = count_statements(call)
        results.append(
            Result(
                workload=label,
                ours=median_ms(call, repeat=51),
                baseline=median_ms(lambda e=external_id: _bare_select(e), repeat=51),
                unit="ms",
                baseline_label="bare indexed SELECT",
                note=f"{statements} queries per request, full Django request cycle in-process",
            )
        )
    embed_token = banner_token_for(external_id=with_banner)

    def embed():  # type: ignore[no-untyped-def]
        response = client.get("/api/v1/banners/embed/", {"token": embed_token})
        assert response.status_code == 200
        return response

    results.append(
        Result(
            workload="embed endpoint (signed token)",
            ours=median_ms(embed, repeat=51),
            baseline=median_ms(lambda: _bare_select(with_banner), repeat=51),
            unit="ms",
            baseline_label="bare indexed SELECT",
            note=f"{count_statements(embed)} query per request",
        )
    )
    return results
