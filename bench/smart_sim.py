"""Smart retry timing against the fixed Default schedule, in a simulated world (``make smart-sim``).

The world (customers, paydays, declines, the true chance of each retry) is in :mod:`bench.smart_world`;
its module docstring is the table of assumptions. This module runs the real engine through it:

1. **Learning.** One failed invoice per customer (arm ``P``, "past"), failures spread over 50 days, run
   through the fixed Default v1 with the real tick for 60 simulated days, so our own retry history exists.
   Every customer also has 12 months of paid invoices (on or just after their paydays, mostly). Then
   ``retry_timing_learn`` detects paydays and learns the model from those retries.
2. **Evaluation.** A new failed invoice per customer, failures spread over 7 days, opened twice: on a
   customer twin forced onto the fixed Default v1 (arm ``F``) and on another twin forced onto the smart
   Default v2 (arm ``S``). Twins have the same zone, card, paid history (so the same detected payday) and
   share the world's random draws. Both arms run in the same ticks for 37 simulated days.

Time travel: the tick runs only at whole hours at which something is due (the earliest open case's next
action or a customer's own payment), so a quiet night costs nothing. Tasks are queued (``Q_SYNC=0``), not
run; messages are queued in the outbox and not sent (they change nothing here: customers paying by
themselves are drawn by the world, not by emails).

Needs PostgreSQL (``DATABASE_URL``) with the schema migrated; it deletes and recreates the dunning data.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.smart_world import (
    FUNDS,
    GENERIC,
    Failure,
    Person,
    WorldGateway,
    failures,
    people,
)

START = datetime(2027, 1, 4, tzinfo=UTC)  # a Monday
LEARN_DAYS, PAST_FAILURE_DAYS = 60, 50
EVAL_FAILURE_DAYS, EVAL_RUN_DAYS = 7, 37
ARMS = {"F": "fixed Default v1", "S": "smart Default v2"}


@dataclass(frozen=True)
class SimConfig:
    customers: int = 2000
    seed: int = 13
    bootstrap: int = 2000


@dataclass
class ArmFigures:
    invoices: int = 0
    retryable: int = 0
    recovered: int = 0
    value_eur: float = 0.0
    charges: int = 0
    self_paid: int = 0
    skipped_threshold: int = 0
    skipped_no_slot: int = 0
    predicted: list[float] = field(default_factory=list)
    succeeded: list[bool] = field(default_factory=list)
    by_group: dict[str, list[tuple[float, bool]]] = field(default_factory=lambda: defaultdict(list))
    true_p: list[float] = field(default_factory=list)
    # Per world invoice: recovered value in EUR (0 when not recovered by retry).
    values: dict[int, float] = field(default_factory=dict)
    charges_per: dict[int, int] = field(default_factory=dict)

    @property
    def per_charge(self) -> float:
        return self.value_eur / self.charges if self.charges else 0.0


@dataclass
class SimReport:
    customers: int = 0
    ticks: int = 0
    tick_seconds: float = 0.0
    seconds: float = 0.0
    learnt_attempts: int = 0
    with_payday: int = 0
    true_payday: int = 0
    past_recovered: int = 0
    arms: dict[str, ArmFigures] = field(default_factory=dict)
    diff_value: tuple[float, float, float] = (0.0, 0.0, 0.0)  # estimate, 95 % low, high (EUR)
    lift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # smart / fixed - 1
    diff_recovered: tuple[float, float, float] = (0.0, 0.0, 0.0)  # invoices
    diff_charges: tuple[float, float, float] = (0.0, 0.0, 0.0)


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE dunning_doublepayment, dunning_caseevent, dunning_paymentattempt, dunning_dunningcase, "
            "dunning_simulatedcharge, dunning_simulatedgatewayrule, dunning_gatewaycircuit, "
            "dunning_retrytimingmodel, notifications_notification, notifications_banner, "
            "notifications_stafftask, customers_auditevent, customers_invoice, customers_paymentmethod, "
            "customers_contact, customers_customer RESTART IDENTITY CASCADE"
        )


def _customers(population: list[Person], arm: str) -> dict[int, tuple[object, object]]:
    """Customer rows (and their cards and paid history) of one arm; {world key: (customer, card)}."""
    from customers.models import Customer, Invoice, InvoiceStatus, PaymentMethod

    customers = Customer.objects.bulk_create(
        Customer(
            external_id=f"ss-{arm}-{p.key}",
            name=f"World customer {p.key} ({arm})",
            email=f"billing-{arm}-{p.key}@example.com",
            currency=p.currency,
            time_zone=p.zone,
            country=p.country,
            gateway_customer_id=f"cus_world_{arm}_{p.key}",
        )
        for p in population
    )
    cards = PaymentMethod.objects.bulk_create(
        PaymentMethod(
            customer=customer,
            type="card",
            brand="visa",
            last4=f"{p.key % 10_000:04d}",
            exp_month=12,
            exp_year=2031,
            gateway_payment_method_id=f"pm_world_{arm}_{p.key}",
            funding=p.funding,
            country=p.country,
            is_default=True,
        )
        for p, customer in zip(population, customers, strict=True)
    )
    history = [
        Invoice(
            customer=customer,
            number=f"SS-hist-{arm}-{p.key}-{n}",
            amount_due_minor=p.amount_minor,
            amount_paid_minor=p.amount_minor,
            currency=p.currency,
            status=InvoiceStatus.PAID,
            due_at=paid_at,
            paid_at=paid_at,
            gateway="simulated",
        )
        for p, customer in zip(population, customers, strict=True)
        for n, paid_at in enumerate(p.paid_history(START))
    ]
    Invoice.objects.bulk_create(history, batch_size=5000)
    return {p.key: (customer, card) for p, customer, card in zip(population, customers, cards, strict=True)}


def _open(
    failed: list[Failure], arm: str, rows: dict[int, tuple[object, object]], version_number: int
) -> None:
    """Failed invoices opened through the real service, then forced onto one Default version."""
    from customers.actors import Actor
    from customers.models import Invoice
    from dunning.models import DunningCase, PolicyVersion
    from dunning.services.cases import invoice_payment_failed

    invoices = Invoice.objects.bulk_create(
        Invoice(
            customer=rows[f.key][0],
            number=f"SS-{f.phase}-{arm}-{f.key}",
            amount_due_minor=f.person.amount_minor,
            currency=f.person.currency,
            status="open",
            due_at=f.failed_at,
            gateway="simulated",
        )
        for f in failed
    )
    actor = Actor.system("smart-sim billing")
    for invoice, f in zip(invoices, failed, strict=True):
        invoice_payment_failed(
            invoice=invoice,
            actor=actor,
            decline_code=f.decline_code,
            payment_method=rows[f.key][1],
            failed_at=f.failed_at,
        )
    version = PolicyVersion.objects.get(policy__name="Default", number=version_number)
    DunningCase.objects.filter(invoice__number__startswith=f"SS-{failed[0].phase}-{arm}-").update(
        policy_version=version
    )


def _self_payments(failed: list[Failure], arms: str) -> list[tuple[datetime, str]]:
    return sorted(
        (f.self_pay_at, f"SS-{f.phase}-{arm}-{f.key}") for f in failed if f.self_pay_at for arm in arms
    )


def _ceil_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def advance(
    gateway: WorldGateway,
    moment: datetime,
    until: datetime,
    self_pays: list[tuple[datetime, str]],
    report: SimReport,
) -> datetime:
    """Tick at every whole hour, up to ``until``, at which a case is due or a customer pays by themselves."""
    from django.db.models import Min

    from customers.actors import Actor
    from customers.models import Invoice, InvoiceStatus
    from customers.services import invoice_close
    from dunning.models import CaseState, DunningCase
    from dunning.services.tick import run_tick

    actor = Actor.system("customer paid through another channel")
    while True:
        due = DunningCase.objects.filter(state=CaseState.OPEN, next_action_at__isnull=False).aggregate(
            at=Min("next_action_at")
        )["at"]
        targets = [t for t in (due, self_pays[0][0] if self_pays else None) if t is not None]
        if not targets or min(targets) > until:
            return moment
        moment = max(_ceil_hour(min(targets)), moment + timedelta(hours=1))
        while self_pays and self_pays[0][0] <= moment:
            at, number = self_pays.pop(0)
            invoice = Invoice.objects.get(number=number)
            if invoice.status == InvoiceStatus.OPEN:
                invoice_close(
                    invoice=invoice,
                    status=InvoiceStatus.PAID,
                    actor=actor,
                    reason="paid by bank transfer",
                    paid_at=at,
                )
        gateway.now = moment
        started = time.perf_counter()
        # One worker: a tick here has a few dozen due cases, and a second worker's connection costs more
        # than it saves (about 25 ms a tick instead of 90).
        run_tick(now=moment, gateway=gateway, workers=1)
        report.tick_seconds += time.perf_counter() - started
        report.ticks += 1


def _figures(
    phase: str, arm: str, world: dict[tuple[str, int], Failure], gateway: WorldGateway
) -> ArmFigures:
    from customers.models import Invoice, InvoiceStatus
    from dunning.models import AttemptSource, AttemptStatus, CaseEvent, CaseEventKind, PaymentAttempt

    prefix = f"SS-{phase}-{arm}-"
    figures = ArmFigures()
    keys = [key for (p, key) in world if p == phase]
    figures.invoices = len(keys)
    figures.retryable = sum(
        1
        for key in keys
        if world[(phase, key)].decline_code
        in {"insufficient_funds", "card_velocity_exceeded", "processing_error"} | GENERIC
    )
    figures.values = dict.fromkeys(keys, 0.0)
    figures.charges_per = dict.fromkeys(keys, 0)
    attempts = PaymentAttempt.objects.filter(
        source=AttemptSource.RETRY, invoice__number__startswith=prefix, processed=True
    ).values_list("invoice__number", "status", "predicted_success", "retried_decline_code")
    for number, status, predicted, code in attempts:
        key = int(number.rsplit("-", 1)[1])
        ok = status in (AttemptStatus.SUCCEEDED, AttemptStatus.DUPLICATE)
        figures.charges += 1
        figures.charges_per[key] += 1
        if ok:
            figures.recovered += 1
            figures.values[key] = world[(phase, key)].amount_eur
        if predicted is not None:
            figures.predicted.append(predicted)
            figures.succeeded.append(ok)
            group = "funds" if code in FUNDS else "generic" if code in GENERIC else "processing"
            figures.by_group[group].append((predicted, ok))
    figures.value_eur = sum(figures.values.values())
    paid = Invoice.objects.filter(number__startswith=prefix, status=InvoiceStatus.PAID).values_list(
        "number", flat=True
    )
    figures.self_paid = sum(1 for number in paid if not figures.values[int(number.rsplit("-", 1)[1])])
    events = CaseEvent.objects.filter(
        kind=CaseEventKind.RETRY_SCHEDULED, case__invoice__number__startswith=prefix
    )
    figures.skipped_threshold = events.filter(reason__startswith="smart retry skipped: best").count()
    figures.skipped_no_slot = events.filter(reason__startswith="smart retry skipped: no slot").count()
    figures.true_p = [p for number, _, p, _ in gateway.log if number.startswith(prefix)]
    return figures


def _bootstrap(
    fixed: ArmFigures, smart: ArmFigures, rounds: int, seed: int
) -> tuple[tuple[float, float, float], ...]:
    """Paired bootstrap over world invoices: (value difference, lift, recovered difference, charge difference),
    each (estimate, 2.5 %, 97.5 %)."""
    keys = sorted(fixed.values)
    f_value = [fixed.values[k] for k in keys]
    s_value = [smart.values[k] for k in keys]
    f_rec = [1 if v else 0 for v in f_value]
    s_rec = [1 if v else 0 for v in s_value]
    f_ch = [fixed.charges_per[k] for k in keys]
    s_ch = [smart.charges_per[k] for k in keys]
    rng = random.Random(seed)
    n = len(keys)
    samples: list[list[float]] = [[], [], [], []]
    for _ in range(rounds):
        pick = rng.choices(range(n), k=n)
        fv, sv = sum(f_value[i] for i in pick), sum(s_value[i] for i in pick)
        samples[0].append(sv - fv)
        samples[1].append(sv / fv - 1 if fv else 0.0)
        samples[2].append(sum(s_rec[i] - f_rec[i] for i in pick))
        samples[3].append(sum(s_ch[i] - f_ch[i] for i in pick))
    fv, sv = sum(f_value), sum(s_value)
    estimates = [sv - fv, sv / fv - 1 if fv else 0.0, sum(s_rec) - sum(f_rec), sum(s_ch) - sum(f_ch)]
    out = []
    for estimate, values in zip(estimates, samples, strict=True):
        values.sort()
        out.append((estimate, values[int(0.025 * rounds)], values[int(0.975 * rounds) - 1]))
    return tuple(out)


def run_smart_sim(config: SimConfig, *, progress: Callable[[str], None] = print) -> SimReport:
    from django.conf import settings
    from django.test.utils import override_settings

    from dunning.gateways.simulated import _MemoryLedger
    from dunning.models import RetryTimingModel
    from dunning.services.timing_learn import retry_timing_learn

    began = time.perf_counter()
    report = SimReport(customers=config.customers)
    population = people(config.customers, seed=config.seed)
    report.true_payday = sum(1 for p in population if p.payday.kind != "none")
    past = failures(population, phase="past", start=START, days=PAST_FAILURE_DAYS, seed=config.seed)
    eval_start = START + timedelta(days=LEARN_DAYS)
    fresh = failures(population, phase="eval", start=eval_start, days=EVAL_FAILURE_DAYS, seed=config.seed)
    world = {(f.phase, f.key): f for f in past + fresh}
    _MemoryLedger.reset()
    gateway = WorldGateway(world, seed=config.seed)
    assert settings.PAYMENT_GATEWAY == "simulated"

    with override_settings(REPORTING_REFRESH_AFTER_TICK=False):
        progress(
            f"populating {config.customers:,} customers × 3 (past, fixed twin, smart twin) with paid history"
        )
        reset()
        rows = {arm: _customers(population, arm) for arm in ("P", "F", "S")}
        progress(f"opening {len(past):,} past failures on the fixed Default v1")
        _open(past, "P", rows["P"], 1)
        progress(f"learning phase: {LEARN_DAYS} simulated days of ticks")
        moment = advance(gateway, START - timedelta(hours=1), eval_start, _self_payments(past, "P"), report)
        progress(f"… {report.ticks:,} ticks in {report.tick_seconds:.0f} s; learning the timing model")
        retry_timing_learn(now=eval_start)
        learnt = RetryTimingModel.objects.order_by("-built_at", "-pk").first()
        assert learnt is not None
        report.learnt_attempts = learnt.attempts_counted
        report.with_payday = learnt.customers_with_payday
        report.past_recovered = sum(
            1 for number in gateway.log if number[3] and number[0].startswith("SS-past-")
        )
        progress(f"opening {len(fresh):,} evaluation failures twice: fixed v1 twins and smart v2 twins")
        _open(fresh, "F", rows["F"], 1)
        _open(fresh, "S", rows["S"], 2)
        progress(f"evaluation: {EVAL_RUN_DAYS} simulated days of ticks")
        advance(
            gateway,
            max(moment, eval_start - timedelta(hours=1)),
            eval_start + timedelta(days=EVAL_RUN_DAYS),
            _self_payments(fresh, "FS"),
            report,
        )
    report.arms = {arm: _figures("eval", arm, world, gateway) for arm in ARMS}
    report.diff_value, report.lift, report.diff_recovered, report.diff_charges = _bootstrap(
        report.arms["F"], report.arms["S"], config.bootstrap, config.seed
    )
    report.seconds = time.perf_counter() - began
    return report


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _interval(value: tuple[float, float, float], fmt: str) -> str:
    return f"{value[0]:{fmt}} [{value[1]:{fmt}}, {value[2]:{fmt}}]"


def report_lines(report: SimReport) -> list[str]:
    fixed, smart = report.arms["F"], report.arms["S"]
    rows = [
        ("failed invoices (retryable declines)", lambda a: f"{a.invoices:,} ({a.retryable:,})"),
        ("recovered by retry", lambda a: f"{a.recovered:,} ({a.recovered / a.invoices:.1%})"),
        ("… of retryable declines", lambda a: f"{a.recovered / a.retryable:.1%}"),
        ("recovered value (EUR)", lambda a: f"{a.value_eur:,.0f}"),
        ("retry charges sent", lambda a: f"{a.charges:,}"),
        ("recovered value per charge (EUR)", lambda a: f"{a.per_charge:,.2f}"),
        ("success rate per charge", lambda a: f"{_mean([float(s) for s in a.succeeded]):.1%}"),
        (
            "smart retries skipped (threshold / no slot)",
            lambda a: f"{a.skipped_threshold} / {a.skipped_no_slot}",
        ),
        ("paid by themselves (other channel)", lambda a: f"{a.self_paid:,}"),
        ("mean predicted p of charges", lambda a: f"{_mean(a.predicted):.1%}"),
        ("mean true p of charges (world)", lambda a: f"{_mean(a.true_p):.1%}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':{width}}  {'fixed Default v1':>18}  {'smart Default v2':>18}"]
    lines += [f"{label:{width}}  {fn(fixed):>18}  {fn(smart):>18}" for label, fn in rows]
    lines += [
        "",
        "smart − fixed, paired bootstrap over invoices, 95 % interval:",
        f"  recovered value: {_interval(report.diff_value, ',.0f')} EUR; lift {_interval(report.lift, '+.1%')}",
        f"  invoices recovered: {_interval(report.diff_recovered, '+.0f')}; charges: {_interval(report.diff_charges, '+.0f')}",
        "",
        "calibration of the smart arm (predicted at send time vs actual success):",
    ]
    for group, pairs in sorted(smart.by_group.items()):
        lines.append(
            f"  {group:<11} {len(pairs):>5} charges: predicted {_mean([p for p, _ in pairs]):.1%}, "
            f"actual {_mean([float(ok) for _, ok in pairs]):.1%}"
        )
    lines += [
        "",
        f"learning: {report.learnt_attempts:,} past retries counted; paydays detected for {report.with_payday:,} "
        f"customer rows (of {3 * report.customers:,}; {report.true_payday:,} of {report.customers:,} world "
        f"customers have one); past invoices recovered by retry: {report.past_recovered:,}",
        f"run: {report.ticks:,} ticks in {report.tick_seconds:.0f} s; {report.seconds:.0f} s in all",
    ]
    return lines
