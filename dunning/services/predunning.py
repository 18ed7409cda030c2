"""Pre-dunning: remind customers before their card expires, whatever the gateway.

The cheapest failed payment is the one that never happens. Once a day, every default card that expires
within 30 days gets the ``predunning_expiry_30d`` reminder, and within 7 days ``predunning_expiry_7d``,
each at most once per card and expiry month. Stripe's own expiry events (``dunning.services.stripe_sync``)
use the same message keys, so a customer never gets both.
"""

from __future__ import annotations

import calendar
from collections import Counter
from datetime import date, datetime

from django.db.models import Q

from customers.models import PaymentMethod, PaymentMethodType
from dunning.portal.tokens import portal_links_for_customers
from dunning.services import communication

REMINDER_30D = "predunning_expiry_30d"
REMINDER_7D = "predunning_expiry_7d"
WINDOW_DAYS = 30
BATCH = 1000


def card_expiry_step_ref(*, method_ref: str, exp_year: int, exp_month: int, template: str) -> str:
    """The message key of an expiry reminder: one per card, expiry month and reminder."""
    return f"predunning:{method_ref}:{exp_year}-{exp_month:02d}:{template}"[:100]


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def predunning_expiring_cards_remind(*, now: datetime) -> Counter[str]:
    """Queue expiry reminders for default cards that expire within 30 days. Idempotent per card and month."""
    today = now.date()
    this_month = (today.year, today.month)
    next_month = (today.year + today.month // 12, today.month % 12 + 1)
    # A card runs to the end of its month: only this month's and next month's can expire within 30 days.
    cards = (
        PaymentMethod.objects.filter(is_default=True, type=PaymentMethodType.CARD)
        .filter(
            Q(exp_year=this_month[0], exp_month=this_month[1])
            | Q(exp_year=next_month[0], exp_month=next_month[1])
        )
        .order_by("id")
        .values_list("id", "customer_id", "gateway_payment_method_id", "exp_year", "exp_month")
    )
    counts: Counter[str] = Counter()
    batch: list[tuple[int, int, str, int, int]] = []
    for row in cards.iterator(chunk_size=BATCH):
        batch.append(row)
        if len(batch) == BATCH:
            counts.update(_remind(batch, today=today, now=now))
            batch = []
    counts.update(_remind(batch, today=today, now=now))
    return counts


def _remind(rows: list[tuple[int, int, str, int, int]], *, today: date, now: datetime) -> Counter[str]:
    counts: Counter[str] = Counter()
    intents = []
    links = portal_links_for_customers([customer_id for _, customer_id, *_ in rows], source="email")
    for pk, customer_id, gateway_ref, exp_year, exp_month in rows:
        days_left = (_month_end(exp_year, exp_month) - today).days
        if not 0 <= days_left <= WINDOW_DAYS:
            continue
        template = REMINDER_7D if days_left <= 7 else REMINDER_30D
        intents.append(
            communication.MessageIntent(
                customer_id=customer_id,
                case_id=None,
                step_ref=card_expiry_step_ref(
                    method_ref=gateway_ref or f"pm{pk}",
                    exp_year=exp_year,
                    exp_month=exp_month,
                    template=template,
                ),
                template_key=template,
                invoice_id=None,
                context={"portal_url": links[customer_id]},
            )
        )
        counts[template] += 1
    queued = communication.send_messages(intents=intents, now=now)
    counts["queued"] += queued
    return counts
