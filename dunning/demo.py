"""Demo dunning history: cases for the demo's failed invoices, replayed through the real tick.

Each failed demo invoice opens a case at its due date with a realistic decline code; the simulated gateway
gets a per-customer outcome sequence (some recover on the first retry, some later, some never); then the
tick runs day by day up to now, so the admin and reports show a believable history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.test.utils import override_settings
from django.utils import timezone

from customers.actors import Actor
from customers.demo import DEMO_PREFIX
from customers.models import Invoice, InvoiceStatus
from dunning.models import DunningCase, SimulatedGatewayRule
from dunning.services.cases import invoice_payment_failed
from dunning.services.tick import run_tick
from notifications.services import notifications_dispatch_due

DEMO_ACTOR = Actor.system("demo data")
CARD_DECLINES = [
    ("insufficient_funds", 40),
    ("do_not_honor", 15),
    ("generic_decline", 10),
    ("expired_card", 12),
    ("card_velocity_exceeded", 6),
    ("processing_error", 6),
    ("authentication_required", 6),
    ("stolen_card", 2),
    ("incorrect_cvc", 3),
]
BANK_RETURNS = [("R01", 70), ("R09", 15), ("R02", 10), ("R16", 5)]
OUTCOME_SEQUENCES = [
    (["succeeded"], 35),
    (["insufficient_funds", "succeeded"], 20),
    (["insufficient_funds", "insufficient_funds", "succeeded"], 10),
    (["insufficient_funds"], 35),
]


@dataclass
class DemoDunningSummary:
    cases: int = 0
    ticks: int = 0
    skipped: bool = False


def _pick(rng: random.Random, options: list[tuple[object, int]]) -> object:
    return rng.choices([value for value, _ in options], weights=[weight for _, weight in options])[0]


def seed_demo_dunning(*, seed: int = 20261121, now: datetime | None = None) -> DemoDunningSummary:
    summary = DemoDunningSummary()
    if DunningCase.objects.filter(customer__external_id__startswith=DEMO_PREFIX).exists():
        summary.skipped = True
        return summary
    now = now or timezone.now()
    rng = random.Random(seed)
    failed = list(
        Invoice.objects.filter(
            customer__external_id__startswith=DEMO_PREFIX, status=InvoiceStatus.OPEN, due_at__lt=now
        )
        .select_related("customer")
        .prefetch_related("customer__payment_methods")
        .order_by("due_at", "id")
    )
    rules = []
    for invoice in failed:
        method = next((m for m in invoice.customer.payment_methods.all() if m.is_default), None)
        is_bank = method is not None and method.type != "card"
        code = str(_pick(rng, BANK_RETURNS if is_bank else CARD_DECLINES))
        outcomes = list(_pick(rng, OUTCOME_SEQUENCES))  # type: ignore[call-overload]
        if is_bank and outcomes[0] != "succeeded":
            outcomes = [code if code in ("R01", "R09") else "R02"]
        rules.append(
            SimulatedGatewayRule(customer_external_id=invoice.customer.external_id, outcomes=outcomes)
        )
        invoice_payment_failed(
            invoice=invoice,
            actor=DEMO_ACTOR,
            decline_code=code,
            decline_processor="ach" if is_bank else "stripe",
            payment_method=method,
            gateway="simulated",
            failed_at=invoice.due_at,
        )
        summary.cases += 1
    SimulatedGatewayRule.objects.bulk_create(rules, ignore_conflicts=True)
    if failed:
        moment = failed[0].due_at
        while moment < now:
            run_tick(now=moment)
            summary.ticks += 1
            moment += timedelta(hours=6)
        run_tick(now=now)
        summary.ticks += 1
        # The replayed reminders are history: deliver them to a discarded mailbox so they are recorded as
        # sent, instead of a hundred console emails the first time the task cluster starts.
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            notifications_dispatch_due(max_seconds=120)
    return summary
