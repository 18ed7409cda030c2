"""Demo history for smart retries: what the timing model, its explanations and the calibration page learn from.

``seed_demo_history`` gives the demo accounts a past that the nightly rebuild (``retry_timing_learn``) can read:

- **countries and card funding** where missing: the customer's country from their time zone, each card a
  funding type (debit, credit, prepaid), as a card network would report them;
- **paydays**: most customers (85 %) have a pay calendar that fits their country (the 1st and 15th, every
  other Friday, a monthly day, the last working day), and paid some months of usage top-ups on it, mostly on
  the day itself, sometimes a day or two later. The others pay whenever, so payday detection has noise to
  reject;
- **settled tick retries** on past closed cases (recovered or exhausted), several per customer over the last
  year: an initial decline, then up to four retries, half of the cases on the fixed schedule and half on smart
  timing (slots chosen by the built-in priors, the model of the time). Each retry carries the situation it was
  sent in (``smart_timing.attempt_features``) and the priors' estimate as ``predicted_success``. Outcomes are
  drawn from a "truth" close to the priors but not equal to them: each decline code is a little better or
  worse than the priors say, and money arriving on payday helps more than they assume, so the learnt model
  and the calibration page have something to show.

Then ``retry_timing_learn`` builds the newest model and the customers' paydays. It runs before the dunning
replay (``dunning.demo``), so the demo's open cases get their smart slots, with explanations that cite real
counts, from the learnt model.

Idempotent: the history is created once (its invoices are numbered ``DEMOH-``/``DEMOP-``); a second run
changes nothing. Deterministic for a given day, like the rest of the demo. Rows are bulk-created: the whole
history takes a few seconds on SQLite.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from customers.currencies import minor_unit_exponent
from customers.demo import DEMO_PREFIX
from customers.models import Customer, Invoice, InvoiceStatus, PaymentMethod, PaymentMethodType
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseState,
    DunningCase,
    DunningPolicy,
    PaymentAttempt,
    PolicyVersion,
    RecoveryChannel,
)
from dunning.services.smart_timing import attempt_features
from dunning.services.timing_learn import retry_timing_learn
from dunning.timing.features import RetryContext
from dunning.timing.model import TimingModel, choose_slot, logit, sigmoid
from dunning.timing.payday import (
    FORTNIGHTLY,
    LAST_WORKING_DAY,
    MONTHLY,
    SEMI_MONTHLY,
    PaydayPattern,
)

HISTORY_PREFIX = "DEMOH-"  # past failed invoices with a closed case
TOPUP_PREFIX = "DEMOP-"  # usage top-ups paid on payday
COUNTRY_BY_ZONE = {
    "America/New_York": "US",
    "America/Los_Angeles": "US",
    "Europe/Berlin": "DE",
    "Europe/Paris": "FR",
    "Europe/London": "GB",
    "America/Toronto": "CA",
    "Australia/Sydney": "AU",
    "Asia/Tokyo": "JP",
    "Europe/Stockholm": "SE",
}
FUNDING = [("debit", 55), ("credit", 35), ("prepaid", 10)]
PAYDAY_SHARE = 0.85
# How the customer's payday is expressed, by country: (pattern, weight). A payroll convention, for the demo.
PAY_CALENDARS: dict[str, list[tuple[tuple[str, tuple[int, ...]], int]]] = {
    "US": [((SEMI_MONTHLY, (1, 15)), 4), ((FORTNIGHTLY, (4,)), 4), ((MONTHLY, (1,)), 2)],
    "CA": [((FORTNIGHTLY, (4,)), 5), ((SEMI_MONTHLY, (15, 31)), 5)],
    "GB": [((LAST_WORKING_DAY, ()), 6), ((MONTHLY, (28,)), 3), ((FORTNIGHTLY, (4,)), 1)],
    "DE": [((LAST_WORKING_DAY, ()), 6), ((MONTHLY, (1,)), 4)],
    "FR": [((LAST_WORKING_DAY, ()), 6), ((MONTHLY, (28,)), 4)],
    "SE": [((MONTHLY, (25,)), 1)],
    "AU": [((FORTNIGHTLY, (3,)), 1)],
    "JP": [((MONTHLY, (25,)), 1)],
}
# How many top-ups a customer paid on payday: enough for detection to beat chance with ~130 patterns tried.
TOPUPS = {MONTHLY: (9, 12), LAST_WORKING_DAY: (9, 12), SEMI_MONTHLY: (14, 20), FORTNIGHTLY: (18, 24)}
# Declines of the past cases: (code, category, weight). Only retryable ones: hard declines are not retried.
CARD_DECLINES = [
    ("insufficient_funds", "soft", 50),
    ("do_not_honor", "soft", 14),
    ("generic_decline", "soft", 10),
    ("card_velocity_exceeded", "soft", 6),
    ("processing_error", "processing", 12),
    ("try_again_later", "processing", 8),
]
BANK_DECLINES = [("R01", "soft", 80), ("R09", "soft", 20)]
HISTORY_CASES = (5, 11)  # past failed invoices per customer
MAX_RETRIES = 4
FIXED_RETRY_DAYS = (1, 3, 5, 7)  # the fixed schedule: days after the failure, at the failure's time of day
SMART_WINDOW_DAYS = 2
MIN_SPACING = timedelta(hours=20)
# The truth the outcomes are drawn from, in log-odds against the priors: payday helps more than assumed.
PAYDAY_BOOST = {0: 0.45, 1: 0.5, 2: 0.3}
CODE_DRIFT = 0.35  # each code's truth is the prior's odds times exp(±this), drawn once per code


@dataclass
class DemoHistorySummary:
    countries: int = 0
    funding: int = 0
    topups: int = 0
    cases: int = 0
    attempts: int = 0
    customers_with_payday: int = 0
    attempts_counted: int = 0
    skipped: bool = False


def _pick(rng: random.Random, options: list[tuple]) -> tuple:  # type: ignore[type-arg]
    return rng.choices(options, weights=[option[-1] for option in options])[0]


def _fill_countries_and_funding(customers: list[Customer], summary: DemoHistorySummary) -> None:
    """Blank countries from the time zone; unknown card funding from a per-card draw (stable by id)."""
    for customer in customers:
        if not customer.country and customer.time_zone in COUNTRY_BY_ZONE:
            customer.country = COUNTRY_BY_ZONE[customer.time_zone]
            summary.countries += 1
    Customer.objects.bulk_update([c for c in customers if c.country], ["country"])
    methods = list(
        PaymentMethod.objects.filter(
            customer__in=customers, type=PaymentMethodType.CARD, funding__in=["", "unknown"]
        ).select_related("customer")
    )
    for method in methods:
        method.funding = str(_pick(random.Random(f"funding:{method.gateway_payment_method_id}"), FUNDING)[0])
        method.country = method.country or method.customer.country
    PaymentMethod.objects.bulk_update(methods, ["funding", "country"])
    summary.funding = len(methods)


def _pay_calendar(rng: random.Random, country: str, today: date) -> PaydayPattern | None:
    if rng.random() >= PAYDAY_SHARE:
        return None
    kind, days = _pick(rng, PAY_CALENDARS.get(country, [((MONTHLY, (rng.randint(1, 28),)), 1)]))[0]
    anchor = None
    if kind == FORTNIGHTLY:
        # One known payday sets the phase: the latest such weekday, or the one before.
        anchor = today - timedelta(days=(today.weekday() - days[0]) % 7 + 7 * rng.randint(0, 1))
    return PaydayPattern(kind=kind, days=days, anchor=anchor, confidence=1.0, support=0)


def _paydays(pattern: PaydayPattern, today: date, count: int) -> list[date]:
    """The ``count`` most recent paydays strictly before today, oldest first."""
    found: list[date] = []
    day = today - timedelta(days=1)
    while len(found) < count:
        payday = pattern.last_payday_on_or_before(day)
        if payday is None:
            break
        found.append(payday)
        day = payday - timedelta(days=1)
    return found[::-1]


def _local(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


def _topups(rng: random.Random, customer: Customer, pattern: PaydayPattern, today: date) -> list[Invoice]:
    """Usage top-ups paid on the customer's payday: mostly the day itself, sometimes a day or two later."""
    zone = ZoneInfo(customer.time_zone)
    low, high = TOPUPS[pattern.kind]
    amount = 1500 if customer.currency == "JPY" else 1000
    invoices = []
    for index, payday in enumerate(_paydays(pattern, today, rng.randint(low, high)), start=1):
        late = rng.choices([0, 1, 2], weights=[75, 18, 7])[0]
        paid_at = _local(payday + timedelta(days=late), rng.randint(7, 21), zone)
        invoices.append(
            Invoice(
                customer=customer,
                number=f"{TOPUP_PREFIX}{customer.external_id.removeprefix(DEMO_PREFIX)}-{index:03d}",
                amount_due_minor=amount,
                amount_paid_minor=amount,
                currency=customer.currency,
                status=InvoiceStatus.PAID,
                due_at=paid_at,
                period_start=paid_at,
                period_end=paid_at,
                lines=[{"description": "Usage top-up", "quantity": 1, "amount_minor": amount}],
                gateway="simulated",
                paid_at=paid_at,
                created_at=paid_at,
            )
        )
    return invoices


@dataclass
class _Past:
    """One past failed invoice and what happened to it, before the rows are written."""

    invoice: Invoice
    case: DunningCase
    attempts: list[PaymentAttempt]


def _truth(rng: random.Random, predicted: float, code_drift: float, payday_days: int | None) -> bool:
    """Did the retry succeed? The priors' estimate, moved by the code's drift and a stronger payday effect."""
    shift = code_drift + PAYDAY_BOOST.get(payday_days if payday_days is not None else -1, 0.0)
    return rng.random() < sigmoid(logit(min(max(predicted, 0.001), 0.999)) + shift)


def _past_case(
    rng: random.Random,
    *,
    customer: Customer,
    method: PaymentMethod | None,
    pattern: PaydayPattern | None,
    failed_at: datetime,
    amount: int,
    number: str,
    version: PolicyVersion,
    drift: dict[str, float],
    priors: TimingModel,
) -> _Past:
    is_bank = method is not None and method.type != PaymentMethodType.CARD
    code, category, _ = _pick(rng, BANK_DECLINES if is_bank else CARD_DECLINES)
    smart = rng.random() < 0.5
    invoice = Invoice(
        customer=customer,
        number=number,
        amount_due_minor=amount,
        amount_paid_minor=0,
        currency=customer.currency,
        status=InvoiceStatus.UNCOLLECTIBLE,
        due_at=failed_at,
        period_start=failed_at - timedelta(days=30),
        period_end=failed_at,
        lines=[{"description": "Subscription", "quantity": 1, "amount_minor": amount}],
        gateway="simulated",
        created_at=failed_at - timedelta(days=1),
    )
    common = {
        "payment_method": method,
        "amount_minor": amount,
        "currency": customer.currency,
        "gateway": "simulated",
        "decline_processor": "ach" if is_bank else "stripe",
        "processed": True,
    }
    attempts = [
        PaymentAttempt(
            number=1,
            source=AttemptSource.INITIAL,
            status=AttemptStatus.FAILED,
            decline_code=code,
            decline_category=category,
            created_at=failed_at,
            completed_at=failed_at,
            **common,
        )
    ]
    case = DunningCase(
        customer=customer,
        policy_version=version,
        state=CaseState.EXHAUSTED,
        amount_minor=amount,
        currency=customer.currency,
        opened_at=failed_at,
        decline_code=code,
        first_decline_code=code,
        decline_category=category,
        created_at=failed_at,
    )
    last_failure = failed_at
    for retry in range(1, MAX_RETRIES + 1):
        ctx = RetryContext(
            decline_code=code,
            decline_category=category,
            retry_number=retry,
            funding=(method.funding if method else "") or "unknown",
            brand=(method.brand if method else "") or "",
            amount_minor=amount,
            exponent=minor_unit_exponent(customer.currency),
            segment=customer.segment,
            country=customer.country,
            time_zone=customer.time_zone,
            last_failure_at=last_failure,
            payday=pattern,
        )
        fixed_at = failed_at + timedelta(days=FIXED_RETRY_DAYS[retry - 1])
        at = fixed_at
        if smart:
            at = choose_slot(
                priors,
                ctx,
                window_start=fixed_at,
                window_end=fixed_at + timedelta(days=SMART_WINDOW_DAYS),
                not_before=last_failure + MIN_SPACING,
                fixed_at=fixed_at,
            ).at
        features = attempt_features(priors, ctx, at=at, smart=smart)
        succeeded = _truth(rng, features["predicted_success"], drift[code], features["payday_days"])
        attempts.append(
            PaymentAttempt(
                number=retry + 1,
                source=AttemptSource.RETRY,
                status=AttemptStatus.SUCCEEDED if succeeded else AttemptStatus.FAILED,
                decline_code="" if succeeded else code,
                decline_category="" if succeeded else category,
                created_at=at,
                completed_at=at,
                step_index=retry,
                **common,
                **features,
            )
        )
        case.retry_count = retry
        if succeeded:
            invoice.status, invoice.amount_paid_minor, invoice.paid_at = InvoiceStatus.PAID, amount, at
            case.state, case.recovered_at, case.closed_at = CaseState.RECOVERED, at, at
            case.recovery_channel, case.recovered_amount_minor = RecoveryChannel.SILENT_RETRY, amount
            break
        last_failure = at
    case.last_failure_at = last_failure
    if case.state == CaseState.EXHAUSTED:
        case.closed_at = last_failure + timedelta(days=2)
    return _Past(invoice, case, attempts)


def _policy_version() -> PolicyVersion | None:
    policy = DunningPolicy.objects.filter(name="Default").first()
    version = policy.current_version if policy else None
    return version or PolicyVersion.objects.order_by("-published_at").first()


def seed_demo_history(*, seed: int = 20261121, now: datetime | None = None) -> DemoHistorySummary:
    summary = DemoHistorySummary()
    now = now or timezone.now()
    today = now.date()
    customers = list(
        Customer.objects.filter(external_id__startswith=DEMO_PREFIX)
        .prefetch_related("payment_methods", "invoices")
        .order_by("external_id")
    )
    version = _policy_version()
    if not customers or version is None:
        summary.skipped = True
        return summary
    if Invoice.objects.filter(number__startswith=HISTORY_PREFIX).exists():
        summary.skipped = True
        return summary
    priors = TimingModel.empty()
    code_rng = random.Random(f"{seed}:codes")
    drift = {
        code: code_rng.uniform(-CODE_DRIFT, CODE_DRIFT) for code, _, _ in [*CARD_DECLINES, *BANK_DECLINES]
    }
    with transaction.atomic():
        _fill_countries_and_funding(customers, summary)
        methods = {m.pk: m for m in PaymentMethod.objects.filter(customer__in=customers)}
        topups: list[Invoice] = []
        past: list[_Past] = []
        for customer in customers:
            rng = random.Random(f"{seed}:history:{customer.external_id}")
            pattern = _pay_calendar(rng, customer.country, today)
            if pattern is not None:
                topups += _topups(rng, customer, pattern, today)
            method = next((methods[m.pk] for m in customer.payment_methods.all() if m.is_default), None)
            subscription = [i for i in customer.invoices.all() if i.number.startswith("DEMO-")]
            amount = subscription[0].amount_due_minor if subscription else 4900
            # Past failures on the customer's billing day, a month or more apart, in the last year.
            months = sorted(rng.sample(range(2, 13), rng.randint(*HISTORY_CASES)))
            billing_hour = rng.choice([6, 9, 9, 10, 14])
            for index, months_ago in enumerate(months, start=1):
                failed_day = today - timedelta(days=int(months_ago * 30.44) + rng.randint(0, 6))
                failed_at = _local(failed_day, billing_hour, ZoneInfo(customer.time_zone))
                past.append(
                    _past_case(
                        rng,
                        customer=customer,
                        method=method,
                        pattern=pattern,
                        failed_at=failed_at,
                        amount=amount,
                        number=f"{HISTORY_PREFIX}{customer.external_id.removeprefix(DEMO_PREFIX)}-{index:02d}",
                        version=version,
                        drift=drift,
                        priors=priors,
                    )
                )
        Invoice.objects.bulk_create(topups)
        Invoice.objects.bulk_create([p.invoice for p in past])
        for item in past:
            item.case.invoice = item.invoice
        DunningCase.objects.bulk_create([p.case for p in past])
        attempts = []
        for item in past:
            for attempt in item.attempts:
                attempt.invoice, attempt.case = item.invoice, item.case
                attempts.append(attempt)
        PaymentAttempt.objects.bulk_create(attempts, batch_size=2000)
    summary.topups, summary.cases, summary.attempts = len(topups), len(past), len(attempts)
    record = retry_timing_learn(now=now)
    summary.customers_with_payday = record.customers_with_payday
    summary.attempts_counted = record.attempts_counted
    return summary
