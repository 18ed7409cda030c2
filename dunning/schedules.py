"""The django-q2 schedules this app needs; ``python manage.py sync_schedules`` installs them."""

from __future__ import annotations

from django.conf import settings


def schedules() -> list[dict[str, object]]:
    # A function, not a constant: the tick interval and the gateway are settings.
    wanted: list[dict[str, object]] = [
        {
            "name": "dunning: tick",
            "func": "dunning.tasks.run_dunning_tick",
            "schedule_type": "I",  # every N minutes
            "minutes": settings.DUNNING_TICK_MINUTES,
        },
        {
            # Pre-dunning: cards that expire within 30 days (and 7), before any charge fails.
            "name": "dunning: remind expiring cards",
            "func": "dunning.tasks.remind_expiring_cards",
            "schedule_type": "D",  # daily
        },
        {
            # Smart retries: the timing model and customers' paydays, rebuilt from the day's results.
            "name": "dunning: learn retry timing",
            "func": "dunning.tasks.learn_retry_timing",
            "schedule_type": "D",
        },
    ]
    if settings.PAYMENT_GATEWAY == "stripe":
        wanted += [
            {
                # Missed webhooks and invoices Stripe settled without telling us.
                "name": "dunning: reconcile with Stripe",
                "func": "dunning.tasks.reconcile_stripe",
                "schedule_type": "I",
                "minutes": settings.STRIPE_RECONCILE_MINUTES,
            },
            {
                # Stripe events whose processing task was lost, or that had to wait.
                "name": "dunning: sweep the Stripe inbox",
                "func": "dunning.tasks.sweep_stripe_events",
                "schedule_type": "I",
                "minutes": 5,
            },
            {
                # Privacy: Stripe event payloads past WEBHOOK_PAYLOAD_RETENTION_DAYS.
                "name": "dunning: purge expired Stripe payloads",
                "func": "dunning.tasks.purge_expired_stripe_payloads",
                "schedule_type": "D",
            },
        ]
    return wanted
