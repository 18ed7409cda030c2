"""Deterministic demo accounts: about 200 customers with contacts, cards and invoices in every status.

The same seed always gives the same accounts; dates are placed relative to the day of seeding so the demo
always looks current. Loading is idempotent: accounts that already exist (by ``external_id``) are left
alone, so running it twice creates nothing more.

Demo invoices belong to the simulated gateway, which reads a payment method's gateway id the way Stripe's
test cards work: a card whose id ends in ``9995`` declines for insufficient funds, ``0069`` as expired and
so on, ``pm_sim_decline_<code>`` declines with that code, and anything else pays. So the cards here say
whether they pay. Every working card pays; of the accounts whose newest invoice failed, some have a card
that works again (the bank said no once: funds, a hold; a retry collects), and the others have a card on
file that keeps declining until the customer adds a new one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction

from customers.models import (
    Contact,
    ContactRole,
    Customer,
    EntitlementState,
    Invoice,
    InvoiceStatus,
    PaymentMethod,
    PaymentMethodType,
)

DEMO_SEED = 20261121
DEMO_CUSTOMER_COUNT = 200
DEMO_PREFIX = "demo-"

FIRST_NAMES = [
    "Ada", "Bruno", "Chloé", "Dmitri", "Elena", "Farah", "Gustav", "Hana", "Ines", "Jonas", "Kenji", "Lena",
    "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yusuf",
]  # fmt: skip
LAST_NAMES = [
    "Andersen", "Bauer", "Costa", "Dubois", "Eriksson", "Fischer", "García", "Hoffmann", "Ito", "Jansen",
    "Kowalski", "Larsen", "Martin", "Nakamura", "Okafor", "Petrov", "Rossi", "Schmidt", "Tanaka", "Weber",
]  # fmt: skip
COMPANY_WORDS = [
    "Acme", "Bluebird", "Cobalt", "Driftwood", "Ember", "Fjord", "Granite", "Harbor", "Ion", "Juniper",
    "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchard", "Pioneer", "Quartz", "Redwood", "Summit", "Tidal",
]  # fmt: skip
COMPANY_SUFFIXES = ["Labs", "Analytics", "Studio", "Systems", "Health", "Logistics", "Software", "Media"]

# (currency, locale, time zone, weight)
MARKETS = [
    ("USD", "en-US", "America/New_York", 5),
    ("USD", "en-US", "America/Los_Angeles", 3),
    ("EUR", "de-DE", "Europe/Berlin", 3),
    ("EUR", "fr-FR", "Europe/Paris", 3),
    ("GBP", "en-GB", "Europe/London", 3),
    ("CAD", "en-CA", "America/Toronto", 1),
    ("AUD", "en-AU", "Australia/Sydney", 1),
    ("JPY", "ja-JP", "Asia/Tokyo", 1),
    ("SEK", "sv-SE", "Europe/Stockholm", 1),
]
# (segment, monthly price in major units, weight)
SEGMENTS = [("self_serve", (9, 49), 6), ("smb", (99, 499), 4), ("mid_market", (900, 2500), 2), ("enterprise", (5000, 20000), 1)]  # fmt: skip
PLANS = {"self_serve": "Starter", "smb": "Team", "mid_market": "Business", "enterprise": "Enterprise"}
CARD_BRANDS = [("visa", 6), ("mastercard", 4), ("amex", 1)]
# Stripe's test cards that always decline, by their last four digits, as the simulated gateway reads them:
# insufficient funds, generic decline, expired, velocity, processing error, authentication required,
# stolen, incorrect CVC.
DECLINING_TEST_CARDS = [
    ("9995", 40), ("0002", 15), ("0069", 12), ("6975", 6), ("0119", 6), ("3155", 6), ("9979", 2), ("0127", 3),
]  # fmt: skip
# ACH returns for bank accounts that keep failing: insufficient funds, uncollected, closed, frozen.
DECLINING_BANK_RETURNS = [("R01", 60), ("R09", 20), ("R02", 15), ("R16", 5)]
# Of the accounts whose newest invoice failed, the share whose payment method works again at a retry.
TEMPORARY_FAILURE_SHARE = 0.45


@dataclass
class DemoSummary:
    customers: int = 0
    contacts: int = 0
    payment_methods: int = 0
    invoices: int = 0
    skipped_existing: int = 0
    invoices_by_status: dict[str, int] = field(default_factory=dict)


def _weighted(rng: random.Random, options: list[tuple]) -> tuple:
    return rng.choices(options, weights=[o[-1] for o in options], k=1)[0]


def _start_of_today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _month_add(moment: datetime, months: int) -> datetime:
    month_index = moment.year * 12 + (moment.month - 1) + months
    return moment.replace(year=month_index // 12, month=month_index % 12 + 1, day=min(moment.day, 28))


def _build_customer(rng: random.Random, number: int, today: datetime) -> tuple[Customer, dict]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    segment, (low, high), _ = _weighted(rng, SEGMENTS)
    currency, locale, time_zone, _ = _weighted(rng, MARKETS)
    company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}"
    domain = company.lower().replace(" ", "") + ".example"
    price_major = rng.randint(low, high)
    # Yen has no minor unit and is worth about a hundredth of a dollar, so one "major" step is 150 yen.
    price_minor = price_major * 150 if currency == "JPY" else price_major * 100
    customer = Customer(
        external_id=f"{DEMO_PREFIX}{number:04d}",
        name=f"{first} {last}",
        email=f"{first.lower()}.{last.lower()}@{domain}".encode("ascii", "ignore").decode(),
        company=company,
        segment=segment,
        currency=currency,
        locale=locale,
        time_zone=time_zone,
        gateway_customer_id=f"cus_demo{number:04d}",
        created_at=today - timedelta(days=rng.randint(60, 900)),
    )
    plan = {"segment": segment, "price_minor": price_minor, "domain": domain, "first": first, "last": last}
    return customer, plan


def _children(rng: random.Random, customer: Customer, plan: dict, number: int, today: datetime) -> tuple:
    contacts = [
        Contact(
            customer=customer,
            role=ContactRole.BILLING,
            name=f"Accounts {customer.company}",
            email=f"billing@{plan['domain']}",
        )
    ]
    if plan["segment"] != "self_serve":
        contacts.append(
            Contact(customer=customer, role=ContactRole.PRIMARY, name=customer.name, email=customer.email)
        )
    if plan["segment"] in ("mid_market", "enterprise"):
        contacts.append(
            Contact(
                customer=customer,
                role=ContactRole.TECHNICAL,
                name=f"IT {customer.company}",
                email=f"it@{plan['domain']}",
            )
        )

    methods: list[PaymentMethod] = []
    if plan["segment"] == "enterprise" and rng.random() < 0.5:
        methods.append(
            PaymentMethod(
                customer=customer,
                type=PaymentMethodType.US_BANK_ACCOUNT
                if customer.currency == "USD"
                else PaymentMethodType.SEPA_DEBIT,
                brand="bank",
                last4=f"{rng.randint(0, 9999):04d}",
                gateway_payment_method_id=f"pm_demo{number:04d}b",
                is_default=True,
            )
        )
    else:
        # A spread of expiries: expired, this month, next month (pre-dunning), and comfortably valid.
        months_ahead = rng.choice([-2, 0, 1, 2, 6, 12, 18, 24, 30, 36])
        expiry = _month_add(today, months_ahead)
        methods.append(
            PaymentMethod(
                customer=customer,
                type=PaymentMethodType.CARD,
                brand=_weighted(rng, CARD_BRANDS)[0],
                last4=f"{rng.randint(0, 9999):04d}",
                exp_month=expiry.month,
                exp_year=expiry.year,
                # No trailing digits: the simulated gateway charges it (see the module's docstring).
                gateway_payment_method_id=f"pm_demo{number:04d}card",
                is_default=True,
            )
        )
        if rng.random() < 0.2:
            old = _month_add(today, -rng.randint(3, 20))
            methods.append(
                PaymentMethod(
                    customer=customer,
                    type=PaymentMethodType.CARD,
                    brand=_weighted(rng, CARD_BRANDS)[0],
                    last4=f"{rng.randint(0, 9999):04d}",
                    exp_month=old.month,
                    exp_year=old.year,
                    gateway_payment_method_id=f"pm_demo{number:04d}old",
                    is_default=False,
                )
            )

    invoices: list[Invoice] = []
    history = rng.randint(3, 8)
    billing_day = today - timedelta(days=rng.randint(0, 27))
    for index in range(history, -1, -1):
        due_at = _month_add(billing_day, -index).replace(hour=9)
        period_start = _month_add(due_at, -1)
        amount = plan["price_minor"]
        lines = [{"description": f"{PLANS[plan['segment']]} plan", "quantity": 1, "amount_minor": amount}]
        if plan["segment"] in ("mid_market", "enterprise") and rng.random() < 0.6:
            calls = rng.randint(10_000, 900_000)
            usage_minor = calls // 100
            lines.append(
                {"description": f"API calls ({calls:,})", "quantity": calls, "amount_minor": usage_minor}
            )
            amount += usage_minor
        status = InvoiceStatus.PAID
        if index == 0:
            # The newest invoice decides the account's story.
            status = rng.choices(
                [InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.DRAFT],
                weights=[40, 55, 5],
            )[0]
        elif index <= 2 and rng.random() < 0.08:
            status = rng.choice([InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE])
        invoices.append(
            Invoice(
                customer=customer,
                number=f"DEMO-{number:04d}-{history - index + 1:03d}",
                amount_due_minor=amount,
                amount_paid_minor=amount if status == InvoiceStatus.PAID else 0,
                currency=customer.currency,
                status=status,
                due_at=due_at,
                period_start=period_start,
                period_end=due_at,
                lines=lines,
                gateway="simulated",
                gateway_invoice_id=f"in_demo{number:04d}{history - index + 1:03d}",
                paid_at=due_at + timedelta(hours=rng.randint(0, 48))
                if status == InvoiceStatus.PAID
                else None,
                created_at=period_start,
            )
        )
    if invoices[-1].status == InvoiceStatus.OPEN and invoices[-1].due_at < today:
        _make_it_decline(methods[0], random.Random(f"{DEMO_SEED}:{number}"), today)
    return contacts, methods, invoices


def _make_it_decline(method: PaymentMethod, rng: random.Random, today: datetime) -> None:
    """The default method of an account whose newest invoice failed: unless the failure was temporary, it
    becomes a test card (or account) that always declines. A separate generator per account keeps every
    other value of the data set as it was."""
    if rng.random() < TEMPORARY_FAILURE_SHARE:
        return
    if method.type == PaymentMethodType.CARD:
        last4 = str(_weighted(rng, DECLINING_TEST_CARDS)[0])
        method.last4 = last4
        method.gateway_payment_method_id = f"{method.gateway_payment_method_id}_{last4}"
        if last4 == "0069":  # declines as expired: it is
            expired = _month_add(today, -1)
            method.exp_month, method.exp_year = expired.month, expired.year
    else:
        method.gateway_payment_method_id = f"pm_sim_decline_{_weighted(rng, DECLINING_BANK_RETURNS)[0]}"


def plan_demo_accounts(
    *, count: int = DEMO_CUSTOMER_COUNT, seed: int = DEMO_SEED, today: datetime | None = None
) -> list[tuple[Customer, list[Contact], list[PaymentMethod], list[Invoice]]]:
    """The demo accounts as unsaved objects: the same seed and day always give the same accounts."""
    rng = random.Random(seed)
    today = today or _start_of_today()
    planned = [(number, *_build_customer(rng, number, today)) for number in range(1, count + 1)]
    return [(customer, *_children(rng, customer, plan, number, today)) for number, customer, plan in planned]


def seed_demo_customers(*, count: int = DEMO_CUSTOMER_COUNT, seed: int = DEMO_SEED) -> DemoSummary:
    """Create the demo accounts that do not exist yet, in one transaction."""
    today = _start_of_today()
    summary = DemoSummary()
    # Every account is planned, created or not, so the data never depends on which ones already existed.
    drafts = plan_demo_accounts(count=count, seed=seed, today=today)
    existing = set(
        Customer.objects.filter(external_id__in=[c.external_id for c, *_ in drafts]).values_list(
            "external_id", flat=True
        )
    )
    for customer, _, _, customer_invoices in drafts:
        newest = customer_invoices[-1]
        if newest.status == InvoiceStatus.OPEN and newest.due_at < today:
            customer.entitlement_state = EntitlementState.PAST_DUE
    with transaction.atomic():
        new = [d for d in drafts if d[0].external_id not in existing]
        summary.skipped_existing = len(drafts) - len(new)
        Customer.objects.bulk_create([customer for customer, *_ in new])
        # bulk_create sets primary keys on PostgreSQL and SQLite; re-read to be safe on any backend.
        ids = dict(
            Customer.objects.filter(external_id__in=[c.external_id for c, *_ in new]).values_list(
                "external_id", "id"
            )
        )
        contacts, methods, invoices = [], [], []
        for customer, customer_contacts, customer_methods, customer_invoices in new:
            customer.pk = ids[customer.external_id]
            for child in (*customer_contacts, *customer_methods, *customer_invoices):
                child.customer = customer
            contacts += customer_contacts
            methods += customer_methods
            invoices += customer_invoices
        Contact.objects.bulk_create(contacts)
        PaymentMethod.objects.bulk_create(methods)
        Invoice.objects.bulk_create(invoices)
    summary.customers = len(new)
    summary.contacts = len(contacts)
    summary.payment_methods = len(methods)
    summary.invoices = len(invoices)
    for invoice in invoices:
        summary.invoices_by_status[invoice.status] = summary.invoices_by_status.get(invoice.status, 0) + 1
    return summary
