"""One tick batch, in three phases.

1. One transaction claims the batch (row locks, skipped if another tick holds them, then a lease), loads
   what the plans need, and inserts a ``pending`` attempt, owned by the batch, for every retry (unless the
   gateway's circuit breaker is open). Committed before any charge.
2. The gateway is called outside any transaction, several calls at a time, while the lease keeper renews
   the batch's leases; a request is sent only while the lease has time left.
3. One transaction locks the batch's rows in the one order, records every result, runs the other due
   steps and moves every case on. A case that someone else wrote since phase 1 is not written from the
   batch's old copy: its attempt result is applied to a fresh copy, and its other steps wait for the next
   tick, which plans them again. Deadlocks and serialization failures make the transaction run again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection

from customers.actors import Actor
from customers.bulk import insert_rows
from customers.models import InvoiceStatus
from dunning import state as machine
from dunning.gateways import ChargeResult, PaymentGateway
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEvent,
    CaseEventKind,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
    StepAction,
)
from dunning.services import effects
from dunning.services.batch_load import PlannedCase, Versions, claim_due_cases, load_batch
from dunning.services.cases import Transition, recovery_transition
from dunning.services.charging import (
    NotSent,
    call_gateway,
    charge_request_for,
    is_gateway_failure,
    result_or_unknown,
)
from dunning.services.circuit import CircuitCounter, Gate, circuit_record
from dunning.services.declines import DeclineTable
from dunning.services.events import EventBuffer
from dunning.services.leases import Clock, LeaseKeeper
from dunning.services.locking import cases_lock, invoices_lock
from dunning.services.outcomes import Locks, Settlement, settle_attempts
from dunning.services.planning import after_failed_retry, is_smart
from dunning.services.retrying import in_transaction
from dunning.services.smart_timing import TIMING_COLUMNS, attempt_features, decide_slot, retry_context
from dunning.timing.model import TimingModel

TICK_ACTOR = Actor.system("dunning tick")
# A retry that cannot start now (another charge of the invoice is in flight) is looked at again this soon.
DEFER_IN_FLIGHT = timedelta(minutes=5)

PENDING_ATTEMPT_COLUMNS = (
    "invoice",
    "case",
    "payment_method",
    "number",
    "source",
    "status",
    "amount_minor",
    "currency",
    "gateway",
    "gateway_reference",
    "decline_processor",
    "decline_code",
    "decline_category",
    "message",
    "created_at",
    "step_index",
    "processed",
    "customer_present",
    "claimed_until",
    "claim_token",
    *TIMING_COLUMNS,
)


@dataclass
class BatchCounts:
    counts: Counter[str] = field(default_factory=Counter)
    cases: int = 0
    batches: int = 0


@dataclass
class TickContext:
    """What every batch of one tick shares."""

    now: datetime
    clock: Clock
    lease: timedelta
    keeper: LeaseKeeper
    gateway: PaymentGateway
    circuit: CircuitCounter
    # The learnt retry-timing model (priors only until the first rebuild), read once per tick.
    timing: TimingModel = field(default_factory=TimingModel.empty)


@dataclass
class _Claimed:
    token: str
    until: datetime
    planned: list[PlannedCase]
    retries: list[PlannedCase]
    attempts: dict[int, int]
    held: set[int]
    gate: Gate


def _insert_pending_attempts(
    retries: list[PlannedCase],
    *,
    gateway: str,
    now: datetime,
    token: str,
    until: datetime,
    timing: TimingModel,
) -> dict[int, int]:
    """One INSERT for every retry, each owned by the batch's claim, with an "attempt started" event on each
    case's timeline; returns {case id: attempt id}.

    A case whose invoice already has an attempt in flight (a portal payment, a staff retry) gets none: the
    partial unique index refuses it and ``ON CONFLICT DO NOTHING`` skips it. So does a number taken by a
    concurrent attempt since we read the invoice's last number.
    """
    rows = []
    for item in retries:
        invoice = item.case.invoice
        assert item.plan.retry_step is not None
        features = attempt_features(
            timing,
            retry_context(item, retry_number=item.case.retry_count + 1),
            at=now,
            smart=is_smart(item.rules.steps[item.plan.retry_step]),
        )
        rows.append(
            (
                invoice.pk,
                item.case.pk,
                item.method.pk if item.method else None,
                item.case.last_attempt_number + 1,
                AttemptSource.RETRY,
                AttemptStatus.PENDING,
                invoice.amount_due_minor - invoice.amount_paid_minor,
                invoice.currency,
                gateway,
                "",
                "",
                "",
                "",
                "",
                now,
                item.plan.retry_step,
                False,
                False,
                until,
                token,
                *(features[name] for name in TIMING_COLUMNS),
            )
        )
    if connection.vendor != "postgresql":
        inserted = insert_rows(
            PaymentAttempt,
            PENDING_ATTEMPT_COLUMNS,
            rows,
            on_conflict_do_nothing=True,
            returning=("case", "id"),
        )
        attempts: dict[int, int] = dict(inserted)  # type: ignore[arg-type]
        _started_events(retries, attempts, now=now)
        return attempts
    # One round trip: the attempts, and their "attempt started" events made from what was inserted.
    inserted = insert_rows(
        PaymentAttempt,
        PENDING_ATTEMPT_COLUMNS,
        rows,
        on_conflict_do_nothing=True,
        returning=("case", "id", "step_index", "payment_method"),
        followup_sql=(
            f"INSERT INTO {CaseEvent._meta.db_table} (case_id, occurred_at, kind, actor_type, actor_user_id, "
            "actor_label, from_state, to_state, step_index, reason, details) "
            "SELECT case_id, %s, %s, %s, NULL, %s, '', '', step_index, %s, "
            "jsonb_build_object('attempt_id', id, 'payment_method_id', payment_method_id) FROM ins"
        ),
        followup_params=[
            now,
            CaseEventKind.ATTEMPT_STARTED,
            TICK_ACTOR.type,
            TICK_ACTOR.label,
            AttemptSource.RETRY,
        ],
    )
    return {row[0]: row[1] for row in inserted}


def _started_events(retries: list[PlannedCase], attempts: dict[int, int], *, now: datetime) -> None:
    events = EventBuffer()
    for item in retries:
        attempt_id = attempts.get(item.case.pk)
        if attempt_id is not None:
            events.add(
                case_id=item.case.pk,
                kind=CaseEventKind.ATTEMPT_STARTED,
                actor=TICK_ACTOR,
                at=now,
                step_index=item.plan.retry_step,
                reason=AttemptSource.RETRY,
                details={
                    "attempt_id": attempt_id,
                    "payment_method_id": item.method.pk if item.method else None,
                },
            )
    events.flush()


def _claim(ctx: TickContext, *, size: int, versions: Versions, gate_of: Any) -> _Claimed | None:
    """Phase 1 (one transaction, repeated after a deadlock)."""
    claim = claim_due_cases(now=ctx.now, limit=size, lease=ctx.lease, lease_start=ctx.clock())
    if claim is None:
        return None
    token, until = claim
    planned = load_batch(token, now=ctx.now, limit=size, versions=versions)
    retries = [p for p in planned if not p.case.invoice.is_final and p.plan.retry_step is not None]
    gate = gate_of() if retries else Gate.CLOSED
    held: set[int] = set()
    if gate == Gate.OPEN:
        held, retries = {p.case.pk for p in retries}, []
    elif gate == Gate.PROBE:
        probe_size = settings.DUNNING_CIRCUIT_PROBE_SIZE
        held, retries = {p.case.pk for p in retries[probe_size:]}, retries[:probe_size]
    attempts = _insert_pending_attempts(
        retries, gateway=ctx.gateway.name, now=ctx.now, token=token, until=until, timing=ctx.timing
    )
    return _Claimed(token, until, planned, retries, attempts, held, gate)


def run_batch(
    ctx: TickContext,
    *,
    size: int,
    versions: Versions,
    table: DeclineTable,
    gate_of: Any,
    summary: BatchCounts,
) -> int:
    """Claim and process one batch; returns how many cases it claimed (0: nothing is due)."""
    claimed = in_transaction(
        lambda: _claim(ctx, size=size, versions=versions, gate_of=gate_of), what="claiming a tick batch"
    )
    if claimed is None:
        return 0
    ctx.keeper.add(claimed.token, claimed.until)
    try:
        outcomes = _charge(ctx, claimed)
        snapshots = [(item.case, dict(item.case.__dict__)) for item in claimed.planned]

        def record() -> Counter[str]:
            for case, snapshot in snapshots:  # a repeated try starts from the cases as phase 1 read them
                case.__dict__.clear()
                case.__dict__.update(snapshot)
            counts: Counter[str] = Counter()
            events = EventBuffer()
            _record_batch(ctx, claimed, outcomes, table=table, events=events, counts=counts)
            events.flush()
            return counts

        counts = in_transaction(record, what="recording a tick batch")
    finally:
        ctx.keeper.remove(claimed.token)
    summary.counts.update(counts)
    summary.cases += len(claimed.planned)
    summary.batches += 1
    return len(claimed.planned)


def _charge(ctx: TickContext, claimed: _Claimed) -> dict[int, ChargeResult | Exception]:
    """Phase 2: the gateway, outside any transaction; then the circuit breaker learns how it went."""
    requests = []
    for item in claimed.retries:
        attempt_id = claimed.attempts.get(item.case.pk)
        if attempt_id is None:
            continue
        invoice = item.case.invoice
        requests.append(
            (
                attempt_id,
                charge_request_for(
                    attempt_id=attempt_id,
                    amount_minor=invoice.amount_due_minor - invoice.amount_paid_minor,
                    currency=invoice.currency,
                    gateway=ctx.gateway.name,
                    invoice=invoice,
                    method=item.method,
                    blocked_refs=(item.blocked_ref,) if item.blocked_ref else (),
                ),
            )
        )
    outcomes = call_gateway(ctx.gateway, requests, keeper=ctx.keeper, token=claimed.token)
    sent = [o for o in outcomes.values() if not isinstance(o, NotSent)]
    failed = [o for o in sent if is_gateway_failure(o)]
    last_error = str(failed[-1])[:500] if failed else ""
    if claimed.gate == Gate.PROBE:
        circuit_record(
            gateway=ctx.gateway.name,
            calls=len(sent),
            failures=len(failed),
            now=ctx.clock(),
            last_error=last_error,
            probe=True,
        )
    elif sent:
        ctx.circuit.add(calls=len(sent), failures=len(failed), last_error=last_error, now=ctx.clock())
    return outcomes


def _invoices_to_lock(claimed: _Claimed, outcomes: dict[int, ChargeResult | Exception]) -> list[int]:
    """Invoices this batch may write: those a success pays, and those a step marks uncollectible."""
    ids = []
    for item in claimed.planned:
        attempt_id = claimed.attempts.get(item.case.pk)
        outcome = outcomes.get(attempt_id) if attempt_id is not None else None
        if (
            isinstance(outcome, ChargeResult)
            and outcome.succeeded
            or any(item.rules.steps[i]["action"] == StepAction.MARK_UNCOLLECTIBLE for i in item.plan.run)
        ):
            ids.append(item.case.invoice_id)
    return ids


def _record_batch(
    ctx: TickContext,
    claimed: _Claimed,
    outcomes: dict[int, ChargeResult | Exception],
    *,
    table: DeclineTable,
    events: EventBuffer,
    counts: Counter[str],
) -> None:
    """Phase 3 (inside the caller's transaction)."""
    now, actor = ctx.now, TICK_ACTOR
    soon = timedelta(minutes=settings.DUNNING_PROCESSING_RETRY_MINUTES)
    invoice_status = invoices_lock(invoice_ids=_invoices_to_lock(claimed, outcomes))
    locked = cases_lock(case_ids=[item.case.pk for item in claimed.planned])
    transitions: dict[int, Transition] = {}
    recovered_outside: list[DunningCase] = []
    steps_to_run: list[tuple[DunningCase, int, dict[str, Any]]] = []
    to_save: list[DunningCase] = []
    settlements: list[Settlement] = []
    stale: list[int] = []
    for item in claimed.planned:
        case, plan = item.case, item.plan
        current = locked[case.pk].version == case.loaded_version
        # The invoice as it is now, not as phase 1 read it (it may have been paid or voided meanwhile).
        case.invoice.status = locked[case.pk].invoice_status
        attempt_id = claimed.attempts.get(case.pk)
        if attempt_id is not None:
            settlements.append(
                _settlement(
                    item, attempt_id, outcomes[attempt_id], claimed.token, table=table, now=now, soon=soon
                )
            )
        if not current:
            # Written by someone else since phase 1: nothing of the old plan is carried out; the attempt's
            # result (above) is applied to a fresh copy, and the next tick plans the case again.
            stale.append(case.pk)
            counts["stale.replanned"] += 1
            continue
        case.claimed_until = None
        if attempt_id is not None:
            steps_to_run.extend((case, index, item.rules.steps[index]) for index in plan.run)
            _skipped_events(item, events, actor=actor, now=now, counts=counts)
            continue
        if case.invoice.is_final:
            # Invariant 2: nothing runs after payment. The invoice was closed by another route.
            if case.invoice.status == InvoiceStatus.PAID:
                transitions[case.pk] = recovery_transition(
                    case,
                    channel=RecoveryChannel.PAID_OUTSIDE,
                    amount_minor=case.invoice.amount_paid_minor,
                    now=now,
                    reason="invoice paid outside dunning",
                )
                counts["closed.paid_outside"] += 1
                recovered_outside.append(case)
            else:
                transitions[case.pk] = Transition(
                    machine.Event.CANCEL, reason=f"invoice {case.invoice.status}"
                )
                counts["closed.invoice_" + case.invoice.status] += 1
            to_save.append(case)
            continue
        _skipped_events(item, events, actor=actor, now=now, counts=counts)
        steps_to_run.extend((case, index, item.rules.steps[index]) for index in plan.run)
        if plan.retry_step is not None:
            # No charge started: the breaker is open, or another charge of this invoice is in flight.
            why = (
                "the gateway is failing (circuit breaker open)"
                if case.pk in claimed.held
                else "a charge is in flight"
            )
            counts[
                "retry.paused_gateway_outage" if case.pk in claimed.held else "retry.deferred_in_flight"
            ] += 1
            if plan.next_action_at is not None and plan.next_action_at <= now:
                # Waited until the next step is due: the schedule moves on (emails keep going out during
                # an outage) and this retry is skipped, not used up.
                events.add(
                    case_id=case.pk,
                    kind=CaseEventKind.STEP_SKIPPED,
                    actor=actor,
                    at=now,
                    step_index=plan.retry_step,
                    reason=f"retry could not start before the next step was due: {why}",
                )
                case.next_step_index, case.next_action_at = plan.next_step_index, now
            else:
                # Come back to this retry later; the steps before it ran (above).
                case.next_step_index, case.next_action_at = plan.retry_step, now + DEFER_IN_FLIGHT
        elif plan.choose_slot is not None:
            _schedule_smart_retry(ctx, item, events, counts)
        else:
            case.next_step_index, case.next_action_at = plan.next_step_index, plan.next_action_at
            if plan.finished:
                transitions[case.pk] = Transition(
                    machine.Event.EXHAUST, reason="policy finished without payment"
                )
                counts["exhausted"] += 1
        to_save.append(case)

    decline_messages = {
        item.case.pk: table.customer_message(item.case.decline_code) for item in claimed.planned
    }
    counts.update(
        effects.run_steps(
            steps=steps_to_run, decline_messages=decline_messages, actor=actor, now=now, events=events
        )
    )
    # One statement saves every current case of the batch: those with attempt results and all the others.
    settled, saved = settle_attempts(
        settlements=settlements,
        table=table,
        actor=actor,
        now=now,
        events=events,
        extra_cases=to_save,
        extra_transitions=transitions,
        locks=Locks(invoice_status, locked),
    )
    counts.update(settled)
    counts["recovered"] += sum(1 for case in recovered_outside if case.pk in saved)
    if stale:
        DunningCase.objects.filter(pk__in=stale, claim_token=claimed.token).update(claimed_until=None)


def _schedule_smart_retry(
    ctx: TickContext, item: PlannedCase, events: EventBuffer, counts: Counter[str]
) -> None:
    """A smart retry's window has opened: pick its slot, store why on the case, and say it on the
    timeline. A skip is carried out by the next pass (planning reads the stored reason)."""
    case, plan = item.case, item.plan
    assert plan.choose_slot is not None
    decision = decide_slot(
        ctx.timing,
        item.rules,
        item.snapshot,
        plan.choose_slot,
        retry_context(item, retry_number=case.retry_count + 1),
        now=ctx.now,
    )
    case.next_step_index, case.next_action_at = plan.choose_slot, decision.at
    case.retry_timing = decision.retry_timing
    events.add(
        case_id=case.pk,
        kind=CaseEventKind.RETRY_SCHEDULED,
        actor=TICK_ACTOR,
        at=ctx.now,
        step_index=plan.choose_slot,
        reason=decision.reason,
        details={"slot": decision.retry_timing["at"], "p": decision.retry_timing.get("p")},
    )
    counts["retry.smart_skipped" if decision.skipped else "retry.scheduled"] += 1


def _skipped_events(
    item: PlannedCase, events: EventBuffer, *, actor: Actor, now: datetime, counts: Counter[str]
) -> None:
    for index, reason in item.plan.skipped:
        events.add(
            case_id=item.case.pk,
            kind=CaseEventKind.STEP_SKIPPED,
            actor=actor,
            at=now,
            step_index=index,
            reason=reason,
        )
    counts["skipped"] += len(item.plan.skipped)


def _settlement(
    item: PlannedCase,
    attempt_id: int,
    outcome: ChargeResult | Exception,
    token: str,
    *,
    table: DeclineTable,
    now: datetime,
    soon: timedelta,
) -> Settlement:
    case, plan = item.case, item.plan
    result, error = result_or_unknown(outcome)
    category = ""
    if result is not None and not result.succeeded:
        category = table.lookup(
            result.decline_processor or "stripe", result.decline_code or "generic_decline"
        ).category
    on_failure = after_failed_retry(
        item.rules,
        item.snapshot,
        plan,
        category=category,
        now=now,
        soon=soon,
        processed=result.processed if result is not None else False,
    )
    return Settlement(
        attempt_id=attempt_id,
        invoice_id=case.invoice_id,
        amount_minor=case.invoice.amount_due_minor - case.invoice.amount_paid_minor,
        source=AttemptSource.RETRY,
        payment_method_id=item.method.pk if item.method else None,
        case=case,
        result=result,
        error=error,
        next_on_failure=on_failure,
        retry_step=plan.retry_step,
        claim_token=token,
    )
