"""The Stripe webhook endpoint at 100,000 stored events: a signed delivery through the full Django request
cycle (verify, store once, enqueue after commit) against a bare INSERT of the same row."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client

from bench.harness import Result, count_statements, median_ms, progress
from dunning.gateways.stripe import verify_webhook
from dunning.models import StripeEvent

EVENTS = 100_000
SECRET = "whsec_bench_secret"


def _event(event_id: str) -> dict[str, Any]:
    """An invoice.payment_failed event of realistic size (about 4 KB, two lines, a customer address)."""
    lines = [
        {
            "id": f"il_{uuid.uuid4().hex[:24]}",
            "object": "line_item",
            "amount": 4900,
            "currency": "eur",
            "description": "1 × Team plan (at €49.00 / month)",
            "period": {"start": 1767225600, "end": 1769904000},
            "quantity": 1,
            "metadata": {},
        }
        for _ in range(2)
    ]
    invoice = {
        "id": f"in_{uuid.uuid4().hex[:24]}",
        "object": "invoice",
        "customer": f"cus_{uuid.uuid4().hex[:14]}",
        "customer_email": "billing@example.com",
        "customer_address": {
            "line1": "1 Rue de Rivoli",
            "city": "Paris",
            "postal_code": "75001",
            "country": "FR",
        },
        "amount_due": 9800,
        "amount_paid": 0,
        "amount_remaining": 9800,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "currency": "eur",
        "lines": {"object": "list", "data": lines, "has_more": False, "url": "/v1/invoices/x/lines"},
        "next_payment_attempt": None,
        "number": "ABCD1234-0042",
        "status": "open",
        "status_transitions": {"finalized_at": 1767229200, "paid_at": None, "voided_at": None},
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_x/test_" + "y" * 120,
        "invoice_pdf": "https://pay.stripe.com/invoice/acct_x/test_" + "z" * 120 + "/pdf",
        "metadata": {},
    }
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "invoice.payment_failed",
        "data": {"object": invoice},
    }


def _populate() -> None:
    if os.environ.get("BENCH_FRESH") != "1" and StripeEvent.objects.count() >= EVENTS:
        progress(f"reusing {StripeEvent.objects.count():,} stored events")
        return
    progress(f"storing {EVENTS:,} events")
    sample = json.dumps(_event("evt_sample"))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE dunning_stripeevent RESTART IDENTITY")
        cursor.execute(
            """
            INSERT INTO dunning_stripeevent (event_id, type, livemode, api_version, stripe_created_at, payload,
                source, status, result, error, attempts, received_at, processed_at, locked_until)
            SELECT 'evt_bench_' || g, 'invoice.payment_failed', false, '2026-10-28.endive', now(), %s::jsonb,
                'webhook', 'processed', 'bench', '', 1, now() - (g || ' seconds')::interval, now(), NULL
            FROM generate_series(1, %s) AS g
            """,
            [sample, EVENTS],
        )
        cursor.execute("ANALYZE dunning_stripeevent")


def run() -> list[Result]:
    import stripe  # the bench signs like Stripe does; product code never imports the SDK
    from django_q.conf import Conf

    _populate()
    settings.STRIPE_WEBHOOK_SECRET = [SECRET]
    # As in production: the processing task goes to the database broker after the commit.
    Conf.SYNC = False
    client = Client()

    def signed(event: dict[str, Any]) -> tuple[str, str]:
        payload = json.dumps(event)
        return payload, stripe.WebhookSignature.generate_signature_header(payload, SECRET)

    def deliver_new():  # type: ignore[no-untyped-def]
        payload, header = signed(_event(f"evt_{uuid.uuid4().hex}"))
        response = client.post(
            "/webhooks/stripe/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        )
        assert response.status_code == 200, response.content

    duplicate_payload, duplicate_header = signed(_event("evt_bench_17"))

    def deliver_duplicate():  # type: ignore[no-untyped-def]
        response = client.post(
            "/webhooks/stripe/",
            data=duplicate_payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=duplicate_header,
        )
        assert response.json()["duplicate"] is True

    def bare_insert():  # type: ignore[no-untyped-def]
        payload = json.dumps(_event(f"evt_{uuid.uuid4().hex}"))
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO dunning_stripeevent (event_id, type, livemode, api_version, payload, source, status,
                    result, error, attempts, received_at)
                VALUES (%s, 'invoice.payment_failed', false, '', %s::jsonb, 'webhook', 'received', '', '', 0, now())
                """,
                [f"evt_bare_{uuid.uuid4().hex}", payload],
            )

    payload, header = signed(_event("evt_verify"))
    verify = median_ms(lambda: verify_webhook(payload.encode(), header, [SECRET], 300), repeat=201)
    results = [
        Result(
            workload=f"webhook, new event (inbox of {EVENTS:,})",
            ours=median_ms(deliver_new, repeat=101),
            baseline=median_ms(bare_insert, repeat=101),
            unit="ms",
            baseline_label="bare INSERT of the row",
            note=f"{count_statements(deliver_new)} statements incl. the task enqueue; signature check {verify:.2f} ms",
        ),
        Result(
            workload="webhook, duplicate delivery",
            ours=median_ms(deliver_duplicate, repeat=101),
            baseline=median_ms(bare_insert, repeat=101),
            unit="ms",
            baseline_label="bare INSERT of the row",
            note=f"{count_statements(deliver_duplicate)} statements, nothing enqueued",
        ),
    ]
    # Leave the database as it was measured next time (the inbox grows by ~300 rows per run otherwise).
    from django_q.models import OrmQ

    StripeEvent.objects.exclude(event_id__startswith="evt_bench_").delete()
    OrmQ.objects.filter(key__isnull=False).delete()  # the processing tasks enqueued by the runs above
    return results
