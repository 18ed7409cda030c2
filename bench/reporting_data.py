"""The reporting benchmark's data set, generated in SQL: 250,000 cases and 1,000,000 payment attempts over
104 weeks, with their customers, invoices, policies and sent messages.

Everything is derived from the row number with fixed multipliers, so two runs generate the same rows. The
proportions are realistic rather than uniform: most cases recover, mostly on the first retries and in the
first week; a tail recovers after a month; recent cases are still open.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from django.db import connection

from bench.harness import progress
from customers.models import Customer
from dunning.models import DunningCase, DunningPolicy, PaymentAttempt, PolicyVersion

CUSTOMERS = 60_000
CASES = 250_000
ATTEMPTS = 1_000_000  # 2 to 6 per case, 4 on average
OTHER_INVOICES = 750_000  # paid on the first try: the customers billed without a failure
WEEKS = 104
SEGMENTS = ["self_serve", "smb", "mid_market", "enterprise"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY"]
# A fixed end, so a kept database reads the same however many days later the benchmark runs.
END = datetime.fromisoformat("2026-11-16T00:00:00+00:00")
START = END - timedelta(weeks=WEEKS)


def _versions() -> dict[str, int]:
    """Default v1 (from the migration), and two more policies with two versions each."""
    default = PolicyVersion.objects.get(policy__name="Default", number=1)
    ids = {"default": default.pk}
    for name, segment in (("Enterprise", "enterprise"), ("SMB", "smb")):
        policy, _ = DunningPolicy.objects.get_or_create(
            name=f"Bench {name}", defaults={"match_segment": segment, "priority": 10}
        )
        for number in (1, 2):
            version, _ = PolicyVersion.objects.get_or_create(
                policy=policy,
                number=number,
                defaults={
                    "steps": default.steps,
                    "max_retries": 3 + number,
                    "network_retry_cap": 15,
                    "grace_period_days": 21,
                },
            )
            ids[f"{segment}{number}"] = version.pk
    return ids


def is_current() -> bool:
    return (
        os.environ.get("BENCH_FRESH") != "1"
        and DunningCase.objects.count() == CASES
        and PaymentAttempt.objects.count() == ATTEMPTS
        and Customer.objects.count() == CUSTOMERS
    )


def populate() -> None:
    if is_current():
        progress(f"reusing {CASES:,} cases and {ATTEMPTS:,} attempts")
        return
    progress(f"generating {CUSTOMERS:,} customers, {CASES:,} cases, {ATTEMPTS:,} attempts, 500,000 messages")
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_notification, dunning_caseevent, dunning_paymentattempt, "
            "dunning_dunningcase, customers_auditevent, customers_invoice, customers_paymentmethod, "
            "customers_contact, customers_customer RESTART IDENTITY CASCADE"
        )
    versions = _versions()
    params = {
        "end": END,
        "customers": CUSTOMERS,
        "cases": CASES,
        "other_invoices": OTHER_INVOICES,
        "segments": SEGMENTS,
        "currencies": CURRENCIES,
        "days": WEEKS * 7,
        **{f"v_{key}": value for key, value in versions.items()},
    }
    with connection.cursor() as cursor:
        # About 1 customer in 25 has left; a few are suspended.
        cursor.execute(
            """
            INSERT INTO customers_customer (external_id, name, email, company, segment, currency, locale,
                time_zone, gateway_customer_id, entitlement_state, created_at, updated_at)
            SELECT 'rb-' || g, 'Customer ' || g, 'c' || g || '@example.com', '', (%(segments)s::text[])[1 + g %% 4],
                (%(currencies)s::text[])[1 + (g / 4) %% 4], 'en', 'UTC', '',
                CASE WHEN g %% 25 = 0 THEN 'cancelled' WHEN g %% 41 = 0 THEN 'suspended' ELSE 'active' END,
                %(end)s - interval '800 days', %(end)s
            FROM generate_series(1, %(customers)s) AS g
            """,
            params,
        )
        # One row per case with every derived value, reused by the inserts below.
        cursor.execute(
            """
            CREATE TEMPORARY TABLE bench_case AS
            SELECT g, cust, seg, cur, age_days, opened_at, k, r, first_code, first_category,
                CASE
                    WHEN fate = 'recovered' AND opened_at + ttr > %(end)s THEN 'open'
                    ELSE fate
                END AS state,
                ttr,
                CASE WHEN ch < 45 THEN 'silent_retry' WHEN ch < 65 THEN 'email_portal'
                     WHEN ch < 73 THEN 'banner_portal' WHEN ch < 75 THEN 'portal'
                     WHEN ch < 85 THEN 'card_updated' WHEN ch < 90 THEN 'staff' ELSE 'paid_outside' END
                    AS channel,
                CASE WHEN seg = 4 THEN CASE WHEN age_days < 364 THEN %(v_enterprise2)s ELSE %(v_enterprise1)s END
                     WHEN seg = 2 THEN CASE WHEN age_days < 364 THEN %(v_smb2)s ELSE %(v_smb1)s END
                     ELSE %(v_default)s END AS version_id,
                CASE WHEN cur = 4 THEN 500 + (g * 37) %% 20000 ELSE 1000 + (g * 37) %% 90000 END AS amount
            FROM (
                SELECT g, cust, 1 + (cust / 4) %% 4 AS cur, age_days, k, r,
                    1 + cust %% 4 AS seg,
                    %(end)s - age_days * interval '1 day' - ((g * 7919) %% 86400) * interval '1 second'
                        AS opened_at,
                    (ARRAY['insufficient_funds', 'do_not_honor', 'expired_card', 'authentication_required',
                           'processing_error', 'generic_decline', 'fraudulent'])[dc] AS first_code,
                    (ARRAY['soft', 'soft', 'hard', 'authentication_required', 'processing', 'soft',
                           'fraud'])[dc] AS first_category,
                    CASE WHEN age_days < 2 THEN 'open'
                         WHEN r < 650 THEN 'recovered' WHEN age_days < 35 AND r < 960 THEN 'open'
                         WHEN age_days < 35 THEN 'paused' WHEN r < 850 THEN 'exhausted'
                         WHEN r < 920 THEN 'cancelled' ELSE 'handed_off' END AS fate,
                    (CASE WHEN t < 25 THEN t %% 2 WHEN t < 45 THEN 2 + t %% 2 WHEN t < 65 THEN 4 + t %% 4
                          WHEN t < 80 THEN 8 + t %% 7 WHEN t < 93 THEN 15 + t %% 16 ELSE 31 + t %% 30 END)
                        * interval '1 day' + ((g * 97) %% 86400) * interval '1 second' AS ttr,
                    ch
                FROM (
                    SELECT g, 1 + h1 %% %(customers)s AS cust, g %% %(days)s AS age_days,
                        2 + g %% 5 AS k, h2 %% 1000 AS r, h3 %% 100 AS ch, h4 %% 100 AS t,
                        CASE WHEN h5 %% 100 < 55 THEN 1 WHEN h5 %% 100 < 70 THEN 2 WHEN h5 %% 100 < 80 THEN 3
                             WHEN h5 %% 100 < 88 THEN 4 WHEN h5 %% 100 < 95 THEN 5 WHEN h5 %% 100 < 98 THEN 6
                             ELSE 7 END AS dc
                    FROM (
                        -- Independent pseudo-random streams (Lehmer generators), so that the day, the
                        -- customer, the decline and the outcome of a case do not move together.
                        SELECT g, (g * 48271) %% 2147483647 AS h1, (g * 69621) %% 2147483647 AS h2,
                            (g * 16807) %% 2147483647 AS h3, (g * 39373) %% 2147483647 AS h4,
                            (g * 630360016) %% 2147483647 AS h5
                        FROM generate_series(1::bigint, %(cases)s) AS g
                    ) AS streams
                ) AS base
            ) AS derived
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
                status, due_at, lines, gateway, gateway_invoice_id, paid_at, created_at, updated_at)
            SELECT cust, 'RB-' || g, amount,
                CASE WHEN state = 'recovered' THEN amount ELSE 0 END, (%(currencies)s::text[])[cur],
                CASE WHEN state = 'recovered' THEN 'paid' WHEN state = 'cancelled' THEN 'void' ELSE 'open' END,
                opened_at, '[]'::jsonb, 'simulated', '',
                CASE WHEN state = 'recovered' THEN opened_at + ttr END, opened_at, opened_at
            FROM bench_case ORDER BY g
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
                status, due_at, lines, gateway, gateway_invoice_id, paid_at, created_at, updated_at)
            SELECT cust, 'RP-' || g, 4900, 4900, (%(currencies)s::text[])[1 + (cust / 4) %% 4], 'paid', due, '[]'::jsonb,
                'simulated', '', due, due, due
            FROM (
                SELECT g, 1 + (g * 17) %% %(customers)s AS cust,
                    %(end)s - (g %% %(days)s) * interval '1 day' - ((g * 31) %% 86400) * interval '1 second' AS due
                FROM generate_series(1, %(other_invoices)s) AS g
            ) AS other
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO dunning_dunningcase (invoice_id, customer_id, policy_version_id, state, amount_minor,
                currency, opened_at, next_step_index, next_action_at, retry_count, paused_at,
                schedule_shift_seconds, claim_token, decline_code, decline_category, needs_staff_review,
                recovered_at, recovery_channel, recovered_amount_minor, closed_at, created_at, updated_at)
            SELECT g, cust, version_id, state, amount, (%(currencies)s::text[])[cur], opened_at, k,
                CASE WHEN state = 'open' THEN %(end)s + interval '1 day' END, k - 1,
                CASE WHEN state = 'paused' THEN opened_at + interval '3 days' END, 0, '',
                CASE WHEN state = 'recovered' THEN first_code ELSE 'insufficient_funds' END,
                CASE WHEN state = 'recovered' THEN first_category ELSE 'soft' END, false,
                CASE WHEN state = 'recovered' THEN opened_at + ttr END,
                CASE WHEN state = 'recovered' THEN channel ELSE '' END,
                CASE WHEN state = 'recovered' THEN amount END,
                CASE WHEN state = 'recovered' THEN opened_at + ttr
                     WHEN state IN ('exhausted', 'cancelled', 'handed_off') THEN opened_at + interval '28 days'
                END,
                opened_at, opened_at
            FROM bench_case ORDER BY g
            """,
            params,
        )
        # Attempt 1 is the failed initial charge; the others are retries. A case recovered by a retry, the
        # portal, a card update or staff ends with that successful attempt; "paid outside" has none.
        cursor.execute(
            """
            INSERT INTO dunning_paymentattempt (invoice_id, case_id, payment_method_id, number, source, status,
                amount_minor, currency, gateway, gateway_reference, decline_processor, decline_code,
                decline_category, message, created_at, completed_at)
            SELECT g, g, NULL, n,
                CASE WHEN n = 1 THEN 'initial'
                     WHEN last_success AND channel IN ('email_portal', 'banner_portal', 'portal') THEN 'portal'
                     WHEN last_success AND channel IN ('card_updated', 'staff') THEN channel
                     ELSE 'retry' END,
                CASE WHEN last_success THEN 'succeeded' ELSE 'failed' END,
                amount, (%(currencies)s::text[])[cur], 'simulated', '', CASE WHEN last_success THEN '' ELSE 'stripe' END,
                CASE WHEN last_success THEN '' WHEN n = 1 THEN first_code ELSE 'insufficient_funds' END,
                CASE WHEN last_success THEN '' WHEN n = 1 THEN first_category ELSE 'soft' END,
                '', at, at
            FROM (
                SELECT c.*, n,
                    (n = k AND state = 'recovered' AND channel <> 'paid_outside') AS last_success,
                    LEAST(%(end)s, CASE WHEN state = 'recovered' THEN opened_at + ttr * (n - 1) / (k - 1)
                                        ELSE opened_at + (n - 1) * interval '3 days' END) AS at
                FROM bench_case AS c, generate_series(1, c.k) AS n
            ) AS attempts
            ORDER BY g, n
            """,
            params,
        )
        # Two customer emails per case; the second is suppressed when the case recovered within 3 days.
        cursor.execute(
            """
            INSERT INTO notifications_notification (customer_id, invoice_id, case_ref, step_ref, channel,
                audience, template_key, locale, recipient, recipient_name, subject, body_text, body_html,
                status, reason_code, status_reason, bypass_cap, customer_requested, only_while_unpaid,
                send_after, attempts, message_key, message_id, esp_message_id, created_at, sent_at)
            SELECT cust, g, g, 'step:' || s, 'email', 'customer',
                CASE WHEN s = 0 THEN 'failure_1' ELSE 'failure_2' END, 'en', 'c' || cust || '@example.com',
                '', 'Payment failed', '', '',
                CASE WHEN s = 3 AND state = 'recovered' AND ttr < interval '3 days' THEN 'suppressed'
                     ELSE 'sent' END,
                '', '', false, false, true, opened_at + s * interval '1 day', 1, g || ':' || s, '', '',
                opened_at + s * interval '1 day', opened_at + s * interval '1 day'
            FROM bench_case, (VALUES (0), (3)) AS steps(s)
            ORDER BY g, s
            """,
            params,
        )
        cursor.execute("DROP TABLE bench_case")
        for table in (
            "customers_customer",
            "customers_invoice",
            "dunning_dunningcase",
            "dunning_paymentattempt",
            "notifications_notification",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
