"""The ground-truth world of the smart-retry simulation (``make smart-sim``): who the customers are, why
their payments failed, and the true chance that a retry at a given moment succeeds. Bench code only: the
product never sees these numbers; it sees charges succeed or fail, as it would in production.

Assumptions (the note states them; every number is a judgement, chosen moderate on purpose: published
figures say smart retries recover roughly 15–25 % more than fixed schedules, so timing must matter, not
decide everything).

**Population** (one draw per customer, fixed for both arms):

| attribute | distribution |
|---|---|
| country, zone, currency | US 40 % (New York, Chicago, Denver, Los Angeles; USD), GB 15 % (London; GBP), DE 10 % (Berlin; EUR), FR 10 % (Paris; EUR), AU 10 % (Sydney; AUD), CA 5 % (Toronto; CAD), JP 5 % (Tokyo; JPY), IN 5 % (Kolkata; INR) |
| payday | US: fortnightly Friday 45 %, 1st & 15th 25 %, a monthly day 10 %, none 20 %; CA: fortnightly Friday 50 %, 1st & 15th 25 %, none 25 %; GB: last working day 60 %, a monthly day (25th–28th) 20 %, fortnightly Friday 5 %, none 15 %; DE/FR: last working day 50 %, a monthly day (1st, 25th–28th) 25 %, none 25 %; AU: fortnightly Thursday 60 %, a monthly day 15 %, none 25 %; JP: the 25th 70 %, none 30 %; IN: last working day 40 %, the 1st 30 %, none 30 %. A payday on a weekend moves to the Friday before. |
| paid history | 12 months of paid invoices before the run, one a month: paid on a payday (60 %), the day after (25 %) or two days after (15 %), at a local hour 06–22; 15 % of them (all of them for customers without a payday) on a random day instead |
| card funding | debit 45 %, credit 50 %, prepaid 5 % |
| amount (local major units, then ×150 for JPY, ×80 for INR) | monthly plans 9, 19, 29, 49, 99, 199 (weights 20, 25, 20, 15, 10, 4); annual plans 290, 990, 2,400 (weights 3, 2, 1) |
| failure moment | uniform over the days of each phase, at a whole UTC hour |

**Declines** (one draw per failed invoice): insufficient_funds 38 %, do_not_honor 12 %, generic_decline 12 %,
processing_error 7 %, card_velocity_exceeded 6 %, expired_card 17 %, stolen_card 4 %, lost_card 4 %. A share of
each soft decline is simply not recoverable by any retry (account closed, customer gone): recoverable
insufficient_funds 70 %, card_velocity_exceeded 75 %, do_not_honor and generic_decline 55 %,
processing_error 90 %; expired, stolen and lost cards 0 % (the engine never retries them anyway).

**The true success probability** of the k-th charge of a recoverable invoice at a moment (local time of
the customer's zone): ``min(0.95, base × hour × weekday × payday × since × retry × funding × amount)``;
a failed charge returns the invoice's original decline code.

| factor | insufficient_funds | card_velocity_exceeded | do_not_honor, generic_decline | processing_error |
|---|---|---|---|---|
| base | 0.22 | 0.25 | 0.22 | 0.45 |
| local hour 00–06 / 06–09 / 09–17 / 17–21 / 21–24 | 0.80 / 0.95 / 1.10 / 1.00 / 0.90 | same | 0.65 / 0.95 / 1.25 / 0.95 / 0.80 | 0.80 / 0.95 / 1.10 / 1.00 / 0.90 |
| weekday Mon–Fri / Sat–Sun | 1.00 / 0.95 | same | 1.05 / 0.80 | 1.00 / 0.95 |
| days since payday 0 / 1 / 2 / 3–6 / 7–13 / 14+ (no payday: 1) | 1.8 / 2.0 / 1.5 / 1.05 / 0.8 / 0.65; a credit card takes the square root | square root of the same | 1 | 1 |
| hours since the failure <6 / 6–24 / 24–72 / 72–168 / more | 0.6 / 1 / 1 / 1 / 1 | 0.5 / 0.5 / 1.0 / 1.1 / 1.1 | 0.6 / 1 / 1 / 1 / 1 | 1.6 / 1.3 / 1.0 / 0.85 / 0.75 |
| k-th charge 1 / 2 / 3 / 4+ | 1.0 / 0.9 / 0.8 / 0.7 | same | same | same |
| funding prepaid (others 1) | 0.6 | 0.6 | 0.8 | 1 |
| amount in EUR <20 / <60 / <250 / more | 1.15 / 1.0 / 0.85 / 0.65 | same | 1 | 1 |

**Customers paying by themselves** (another channel: a bank transfer, the portal with a new card), the same
moment in both arms: 10 % of soft and processing declines, uniformly 1–20 days after the failure; 30 % of
hard and fraud declines, uniformly 0–14 days after. A retry that succeeds first takes the payment; a
self-payment that comes first ends the retries.

**Randomness.** Each charge's outcome is ``u < p`` with ``u`` drawn from a seed of (phase, world invoice,
k-th charge): the two arms' twin invoices share their draws (common random numbers), so the comparison is
paired. Amounts are converted to EUR at fixed rates (USD 0.92, GBP 1.17, AUD 0.61, CAD 0.68, JPY 0.0062,
INR 0.011) for the totals.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dunning.gateways.base import ChargeRequest
from dunning.gateways.simulated import SUCCEEDED, SimulatedGateway

COUNTRIES: list[tuple[str, int, list[str], str]] = [
    ("US", 40, ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"], "USD"),
    ("GB", 15, ["Europe/London"], "GBP"),
    ("DE", 10, ["Europe/Berlin"], "EUR"),
    ("FR", 10, ["Europe/Paris"], "EUR"),
    ("AU", 10, ["Australia/Sydney"], "AUD"),
    ("CA", 5, ["America/Toronto"], "CAD"),
    ("JP", 5, ["Asia/Tokyo"], "JPY"),
    ("IN", 5, ["Asia/Kolkata"], "INR"),
]
EUR_RATE = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "AUD": 0.61, "CAD": 0.68, "JPY": 0.0062, "INR": 0.011}
EXPONENT = {"JPY": 0}
PRICE_SCALE = {"JPY": 150, "INR": 80}
PLANS = [(9, 20), (19, 25), (29, 20), (49, 15), (99, 10), (199, 4), (290, 3), (990, 2), (2400, 1)]
# (kind, weight, detail): kinds monthly (day), semimonthly, fortnightly (weekday), last_working, none.
PAYDAYS: dict[str, list[tuple[str, int, object]]] = {
    "US": [("fortnightly", 45, 4), ("semimonthly", 25, None), ("monthly", 10, None), ("none", 20, None)],
    "CA": [("fortnightly", 50, 4), ("semimonthly", 25, None), ("none", 25, None)],
    "GB": [("last_working", 60, None), ("monthly", 20, (25, 28)), ("fortnightly", 5, 4), ("none", 15, None)],
    "DE": [("last_working", 50, None), ("monthly", 25, (1, 25, 26, 27, 28)), ("none", 25, None)],
    "FR": [("last_working", 50, None), ("monthly", 25, (1, 25, 26, 27, 28)), ("none", 25, None)],
    "AU": [("fortnightly", 60, 3), ("monthly", 15, None), ("none", 25, None)],
    "JP": [("monthly", 70, (25,)), ("none", 30, None)],
    "IN": [("last_working", 40, None), ("monthly", 30, (1,)), ("none", 30, None)],
}
FUNDING = [("debit", 45), ("credit", 50), ("prepaid", 5)]
DECLINES = [
    ("insufficient_funds", 38),
    ("do_not_honor", 12),
    ("generic_decline", 12),
    ("processing_error", 7),
    ("card_velocity_exceeded", 6),
    ("expired_card", 17),
    ("stolen_card", 4),
    ("lost_card", 4),
]
HARD = {"expired_card", "stolen_card", "lost_card"}
RECOVERABLE = {
    "insufficient_funds": 0.70,
    "card_velocity_exceeded": 0.75,
    "do_not_honor": 0.55,
    "generic_decline": 0.55,
    "processing_error": 0.90,
}
FUNDS = {"insufficient_funds", "card_velocity_exceeded"}
GENERIC = {"do_not_honor", "generic_decline"}
BASE = {
    "insufficient_funds": 0.22,
    "card_velocity_exceeded": 0.25,
    "do_not_honor": 0.22,
    "generic_decline": 0.22,
    "processing_error": 0.45,
}
# Upper bounds (exclusive) of local hour blocks and their factors.
HOUR_DEFAULT = [(6, 0.80), (9, 0.95), (17, 1.10), (21, 1.00), (24, 0.90)]
HOUR_GENERIC = [(6, 0.65), (9, 0.95), (17, 1.25), (21, 0.95), (24, 0.80)]
PAYDAY_EFFECT = [(0, 1.8), (1, 2.0), (2, 1.5), (6, 1.05), (13, 0.8)]
PAYDAY_LATE = 0.65
RETRY_DECAY = [1.0, 0.9, 0.8, 0.7]
SELF_PAY_SOFT, SELF_PAY_HARD = 0.10, 0.30


def _pick(rng: random.Random, options: list[tuple]) -> tuple:  # type: ignore[type-arg]
    return rng.choices(options, weights=[o[1] for o in options])[0]


@dataclass(frozen=True)
class Payday:
    kind: str  # monthly, semimonthly, fortnightly, last_working, none
    day: int = 0  # monthly: the day of the month
    weekday: int = 4  # fortnightly
    anchor: date = date(2025, 1, 3)  # fortnightly: one payday

    def is_payday(self, day: date) -> bool:
        return _is_payday(self, day)

    def days_since(self, day: date) -> int | None:
        if self.kind == "none":
            return None
        for back in range(0, 40):
            if self.is_payday(day - timedelta(days=back)):
                return back
        return None

    def paydays(self, start: date, end: date) -> list[date]:
        days, day = [], start
        while day < end:
            if self.is_payday(day):
                days.append(day)
            day += timedelta(days=1)
        return days


def _weekend_to_friday(day: date) -> date:
    return day - timedelta(days=max(0, day.weekday() - 4))


@lru_cache(maxsize=200_000)
def _is_payday(pattern: Payday, day: date) -> bool:
    if pattern.kind == "none" or day.weekday() >= 5:
        return False
    if pattern.kind == "fortnightly":
        return day.weekday() == pattern.weekday and (day - pattern.anchor).days % 14 == 0
    last = calendar.monthrange(day.year, day.month)[1]
    if pattern.kind == "last_working":
        return day == _weekend_to_friday(date(day.year, day.month, last))
    nominal = [pattern.day] if pattern.kind == "monthly" else [1, 15]
    return any(day == _weekend_to_friday(date(day.year, day.month, min(d, last))) for d in nominal)


@dataclass(frozen=True)
class Person:
    key: int
    country: str
    zone: str
    currency: str
    payday: Payday
    funding: str
    plan_major: int
    history_seed: int

    @property
    def amount_minor(self) -> int:
        return self.plan_major * PRICE_SCALE.get(self.currency, 1) * 10 ** EXPONENT.get(self.currency, 2)

    def paid_history(self, before: datetime) -> list[datetime]:
        """12 monthly payments before ``before``, mostly on or just after a payday (UTC datetimes)."""
        rng = random.Random(self.history_seed)
        zone = ZoneInfo(self.zone)
        end = before.astimezone(zone).date()
        paid = []
        for month in range(12, 0, -1):
            start = end - timedelta(days=30 * month + 3)
            month_days = [start + timedelta(days=n) for n in range(30)]
            candidates = [d for d in month_days if self.payday.is_payday(d)]
            if candidates and rng.random() >= 0.15:
                day = rng.choice(candidates) + timedelta(days=_pick(rng, [(0, 60), (1, 25), (2, 15)])[0])
            else:
                day = rng.choice(month_days)
            moment = datetime(day.year, day.month, day.day, rng.randint(6, 22), tzinfo=zone)
            paid.append(moment.astimezone(ZoneInfo("UTC")))
        return paid


@dataclass(frozen=True)
class Failure:
    """One failed invoice of the world: the same draws for both arms' twins."""

    phase: str
    key: int
    person: Person
    failed_at: datetime
    decline_code: str
    recoverable: bool
    self_pay_at: datetime | None

    @property
    def amount_eur(self) -> float:
        return (
            self.person.amount_minor
            / 10 ** EXPONENT.get(self.person.currency, 2)
            * EUR_RATE[self.person.currency]
        )


def people(count: int, *, seed: int) -> list[Person]:
    rng = random.Random(seed)
    found = []
    for key in range(count):
        country, _, zones, currency = _pick(rng, COUNTRIES)
        kind, _, detail = _pick(rng, PAYDAYS[country])
        if kind == "monthly":
            payday = Payday("monthly", day=rng.choice(detail or (1, 15, 25, 28, 30)))
        elif kind == "fortnightly":
            weekday = int(detail)  # type: ignore[call-overload]
            # 2025-01-03 is a Friday; either phase of the fortnight.
            anchor = date(2025, 1, 3) + timedelta(days=weekday - 4 + 7 * rng.randint(0, 1))
            payday = Payday("fortnightly", weekday=weekday, anchor=anchor)
        else:
            payday = Payday(kind)
        found.append(
            Person(
                key=key,
                country=country,
                zone=rng.choice(zones),
                currency=currency,
                payday=payday,
                funding=_pick(rng, FUNDING)[0],
                plan_major=_pick(rng, PLANS)[0],
                history_seed=rng.getrandbits(32),
            )
        )
    return found


def failures(population: list[Person], *, phase: str, start: datetime, days: int, seed: int) -> list[Failure]:
    rng = random.Random(f"{seed}:{phase}")
    found = []
    for person in population:
        failed_at = start + timedelta(hours=rng.randrange(days * 24))
        code = _pick(rng, DECLINES)[0]
        recoverable = rng.random() < RECOVERABLE.get(code, 0.0)
        if code in HARD:
            self_pay = (
                failed_at + timedelta(hours=rng.randrange(14 * 24)) if rng.random() < SELF_PAY_HARD else None
            )
        else:
            self_pay = (
                failed_at + timedelta(hours=rng.randrange(24, 20 * 24))
                if rng.random() < SELF_PAY_SOFT
                else None
            )
        found.append(Failure(phase, person.key, person, failed_at, code, recoverable, self_pay))
    return found


def _block(table: list[tuple[int, float]], value: int) -> float:
    for bound, factor in table:
        if value <= bound if table is PAYDAY_EFFECT else value < bound:
            return factor
    return PAYDAY_LATE if table is PAYDAY_EFFECT else table[-1][1]


def true_probability(failure: Failure, at: datetime, charge_number: int) -> float:
    """The world's chance that the ``charge_number``-th retry of ``failure`` succeeds at ``at``."""
    code = failure.decline_code
    if not failure.recoverable or code not in BASE:
        return 0.0
    person = failure.person
    local = at.astimezone(ZoneInfo(person.zone))
    p = BASE[code]
    p *= _block(HOUR_GENERIC if code in GENERIC else HOUR_DEFAULT, local.hour)
    if local.weekday() >= 5:
        p *= 0.80 if code in GENERIC else 0.95
    elif code in GENERIC:
        p *= 1.05
    if code in FUNDS:
        since = person.payday.days_since(local.date())
        effect = 1.0 if since is None else _block(PAYDAY_EFFECT, since)
        if code == "card_velocity_exceeded" or person.funding == "credit":
            effect **= 0.5
        p *= effect
    hours = (at - failure.failed_at).total_seconds() / 3600
    if code == "processing_error":
        p *= 1.6 if hours < 6 else 1.3 if hours < 24 else 1.0 if hours < 72 else 0.85 if hours < 168 else 0.75
    elif code == "card_velocity_exceeded":
        p *= 0.5 if hours < 24 else 1.0 if hours < 72 else 1.1
    elif hours < 6:
        p *= 0.6
    p *= RETRY_DECAY[min(charge_number, len(RETRY_DECAY)) - 1]
    if person.funding == "prepaid":
        p *= 0.6 if code in FUNDS else 0.8 if code in GENERIC else 1.0
    if code in FUNDS:
        eur = failure.amount_eur
        p *= 1.15 if eur < 20 else 1.0 if eur < 60 else 0.85 if eur < 250 else 0.65
    return min(0.95, p)


def draw(phase: str, key: int, charge_number: int, *, seed: int) -> float:
    """The uniform number deciding a charge: the same for both arms' twins of one world invoice."""
    digest = hashlib.blake2b(f"{seed}:{phase}:{key}:{charge_number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


class WorldGateway(SimulatedGateway):
    """The simulated gateway (its ledger, idempotency and truth queries) with the world deciding outcomes at
    the simulation's clock (``now``, set before each tick). Invoice numbers name the world invoice:
    ``SS-<phase>-<arm>-<key>``."""

    name = "simulated"

    def __init__(self, world: dict[tuple[str, int], Failure], *, seed: int) -> None:
        super().__init__(ledger="memory", rules=[])
        self.world, self.seed = world, seed
        self.now: datetime | None = None
        self._charges: dict[str, int] = {}
        self._lock = threading.Lock()
        self.log: list[tuple[str, int, float, bool]] = []  # (invoice number, k, true p, succeeded)

    def _decide(self, request: ChargeRequest, customer: str, rule: object) -> str:
        _, phase, _, key = request.invoice_number.split("-")
        failure = self.world[(phase, int(key))]
        with self._lock:
            k = self._charges[request.invoice_number] = self._charges.get(request.invoice_number, 0) + 1
        assert self.now is not None, "set the clock before a tick"
        p = true_probability(failure, self.now, k)
        ok = draw(phase, failure.key, k, seed=self.seed) < p
        with self._lock:
            self.log.append((request.invoice_number, k, p, ok))
        return SUCCEEDED if ok else failure.decline_code
