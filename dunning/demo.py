"""Demo dunning history: cases for the demo's failed invoices, replayed through the real tick.

The demo tells what the admin and the portal say, in three stories:

- **recovered by a retry**: the customer's card works (the bank said no once: funds, a hold). Each opens
  with a soft decline; a replay-only gateway rule declines the first zero to two retries the same way,
  then the card pays. The rules are removed after the replay, so from then on every charge follows the card
  on file, and a case still open recovers at its next retry;
- **recovered with a new card**: the card on file always declines (a Stripe test card, see
  ``customers.demo``). Some of those customers, with a case still open, then add the test card 4242… on
  the payment page today, through the real portal service, and pay;
- **still declined**: the others. Their retries keep declining, and the portal's hint is true for them:
  "Pay now" declines on the card on file, the test card 4242 4242 4242 4242 pays.

The tick runs every six hours from the first failure up to now, so the cases, timelines and reports show
a believable history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.test.utils import override_settings
from django.utils import timezone

from customers.actors import Actor
from customers.demo import DEMO_PREFIX
from customers.models import Invoice, InvoiceStatus, PaymentMethod
from dunning.gateways.simulated import SUCCEEDED, SimulatedGateway, outcome_for_payment_method
from dunning.models import CaseState, DunningCase, RecoveryChannel, SimulatedGatewayRule
from dunning.portal.services import portal_payment_method_confirmed
from dunning.services.cases import invoice_payment_failed
from dunning.services.tick import run_tick
from notifications.services import notifications_dispatch_due

DEMO_ACTOR = Actor.system("demo data")
# The first decline of a payment method that works again: temporary reasons only.
TEMPORARY_CARD_DECLINES = [
    ("insufficient_funds", 60),
    ("do_not_honor", 15),
    ("processing_error", 10),
    ("card_velocity_exceeded", 15),
]
TEMPORARY_BANK_RETURNS = [("R01", 80), ("R09", 20)]
# How many retries decline before the card pays, for the "recovered by a retry" story.
DECLINED_RETRIES = [(0, 50), (1, 30), (2, 20)]
# Of the customers whose card keeps declining and whose case is still open, the share who add a new card.
NEW_CARD_SHARE = 0.4
TEST_CARD = "4242424242424242"


@dataclass
class DemoDunningSummary:
    cases: int = 0
    ticks: int = 0
    new_cards: int = 0
    skipped: bool = False


def _pick(rng: random.Random, options: list[tuple[object, int]]) -> object:
    return rng.choices([value for value, _ in options], weights=[weight for _, weight in options])[0]


def _open_case(invoice: Invoice, rng: random.Random) -> SimulatedGatewayRule | None:
    """Open the invoice's case with a decline that fits its payment method; the replay's rule, if any."""
    method = next((m for m in invoice.customer.payment_methods.all() if m.is_default), None)
    is_bank = method is not None and method.type != "card"
    outcome = outcome_for_payment_method(method.gateway_payment_method_id) if method else SUCCEEDED
    rule = None
    if outcome == SUCCEEDED:  # a method that works: the failure was temporary
        code = str(_pick(rng, TEMPORARY_BANK_RETURNS if is_bank else TEMPORARY_CARD_DECLINES))
        declined_retries = int(_pick(rng, DECLINED_RETRIES))  # type: ignore[call-overload]
        if declined_retries:
            rule = SimulatedGatewayRule(
                customer_external_id=invoice.customer.external_id,
                outcomes=[code] * declined_retries + [SUCCEEDED],
            )
    else:
        code = outcome
    invoice_payment_failed(
        invoice=invoice,
        actor=DEMO_ACTOR,
        decline_code=code,
        decline_processor="ach" if is_bank else "stripe",
        payment_method=method,
        gateway="simulated",
        failed_at=invoice.due_at,
    )
    return rule


def _add_new_cards(rng: random.Random, now: datetime) -> int:
    """Some customers whose card keeps declining add the test card 4242 on the payment page, today."""
    still_declined = (
        DunningCase.objects.filter(customer__external_id__startswith=DEMO_PREFIX, state=CaseState.OPEN)
        .select_related("customer")
        .order_by("id")
    )
    gateway = SimulatedGateway()
    added = 0
    for case in still_declined:
        method = PaymentMethod.objects.filter(customer=case.customer, is_default=True).first()
        if method is None or method.type != "card":
            continue
        if outcome_for_payment_method(method.gateway_payment_method_id) == SUCCEEDED:
            continue  # its next retry pays
        if rng.random() >= NEW_CARD_SHARE:
            continue
        details = gateway.tokenize_test_card(number=TEST_CARD, exp_month=12, exp_year=now.year + 3)
        portal_payment_method_confirmed(
            customer=case.customer,
            details=details,
            channel=RecoveryChannel.EMAIL_PORTAL,
            actor=Actor.customer(label="customer (portal, email link; demo)"),
            gateway=gateway,
        )
        added += 1
    return added


def seed_demo_dunning(*, seed: int = 20261121, now: datetime | None = None) -> DemoDunningSummary:
    summary = DemoDunningSummary()
    # The replay's own cases (the demo invoices are numbered DEMO-…); the closed cases of the smart-retry
    # history (``dunning.demo_history``, numbered DEMOH-…) are created before the replay, on purpose.
    if DunningCase.objects.filter(
        customer__external_id__startswith=DEMO_PREFIX, invoice__number__startswith="DEMO-"
    ).exists():
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
    rules = [rule for invoice in failed if (rule := _open_case(invoice, rng)) is not None]
    summary.cases = len(failed)
    SimulatedGatewayRule.objects.bulk_create(rules, ignore_conflicts=True)
    if not failed:
        return summary
    moment = failed[0].due_at
    while moment < now:
        run_tick(now=moment)
        summary.ticks += 1
        moment += timedelta(hours=6)
    run_tick(now=now)
    summary.ticks += 1
    # The rules only replayed the history: from now on every charge follows the card on file.
    SimulatedGatewayRule.objects.filter(
        customer_external_id__in=[r.customer_external_id for r in rules]
    ).delete()
    summary.new_cards = _add_new_cards(rng, now)
    # The replayed reminders are history: deliver them to a discarded mailbox so they are recorded as
    # sent, instead of a hundred emails the first time the task cluster starts.
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        notifications_dispatch_due(max_seconds=120)
    return summary
