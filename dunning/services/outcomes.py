"""Recording what the gateway said, for many attempts at once.

The tick, single charges (staff, portal, card updates) and reconciliation all end here, so an attempt's
result always has the same consequences: the attempt row, the invoice, the case, events and webhooks.

How a result is recorded, whatever else runs at the same moment:
1. lock what will be written, in the one order (invoices that a success pays, then the cases);
2. a case written by someone else since the caller read it is read again, and the result is applied to
   that fresh copy (a stale copy is never written back);
3. the attempt rows are updated first, each only while its result is still open, and only the attempts
   this call really settled have consequences: a result reported twice changes nothing the second time;
4. a success on an invoice that something else had already paid is a real double payment: the attempt is
   marked ``duplicate`` and a :class:`~dunning.models.DoublePayment` is saved for staff to refund.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from customers.actors import Actor
from customers.bulk import update_from_values
from customers.models import Customer, Invoice, InvoiceStatus, PaymentMethod
from customers.services import invoices_close_many, payment_method_save
from dunning import state as machine
from dunning.gateways import INTERNAL_PROCESSOR, ChargeResult
from dunning.models import (
    IN_FLIGHT_STATUSES,
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    CaseState,
    DeclineCategory,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
)
from dunning.services import communication, effects
from dunning.services.cases import Transition, cases_save, loaded_version, recovery_transition
from dunning.services.declines import Classification, DeclineTable, decline_codes_record_seen, normalise
from dunning.services.double_payments import double_payments_flag
from dunning.services.events import EventBuffer
from dunning.services.locking import LockedCase, cases_lock, invoices_lock

CHANNEL_BY_SOURCE = {
    AttemptSource.RETRY: RecoveryChannel.SILENT_RETRY,
    AttemptSource.STAFF: RecoveryChannel.STAFF,
    AttemptSource.PORTAL: RecoveryChannel.PORTAL,
    AttemptSource.CARD_UPDATED: RecoveryChannel.CARD_UPDATED,
    AttemptSource.INITIAL: RecoveryChannel.PAID_OUTSIDE,
}
ATTEMPT_RESULT_FIELDS = (
    "status",
    "gateway_reference",
    "decline_processor",
    "decline_code",
    "decline_category",
    "message",
    "completed_at",
    "processed",
    "payment_method",
    "claimed_until",
    "claim_token",
)
ATTEMPT_UNKNOWN_FIELDS = ("status", "message", "claimed_until", "claim_token")
# Where the money could still come back: a late success recovers these too.
RECOVERABLE_STATES = machine.sources_for(machine.Event.RECOVER)
BLOCKING_CATEGORIES = (DeclineCategory.HARD, DeclineCategory.FRAUD)


@dataclass(frozen=True)
class Settlement:
    """One attempt's result, with what the caller wants done with the case after a failure.

    ``result`` None means the outcome is unknown (timeout, 5xx): the attempt is reconciled later.
    ``next_on_failure`` is (next step index, next action time) for tick retries; None leaves the case's
    schedule as it is (staff, portal and card-updated attempts do not move the policy).
    """

    attempt_id: int
    invoice_id: int
    amount_minor: int
    source: str
    payment_method_id: int | None
    case: DunningCase | None
    result: ChargeResult | None
    error: str = ""
    channel: str = ""
    next_on_failure: tuple[int, datetime | None] | None = None
    # For a tick retry: the step that made it. An unknown outcome puts the case back on that step.
    retry_step: int | None = None
    # Settling an earlier attempt from the gateway's records (reconciliation).
    reconciling: bool = False
    # An unknown outcome releases the attempt's claim only while it is still held under this token.
    claim_token: str = ""

    @property
    def counts_as_retry(self) -> bool:
        """A scheduled retry the processor really processed: the only kind the retry cap counts."""
        return self.source == AttemptSource.RETRY and self.result is not None and self.result.processed


@dataclass(frozen=True)
class Locks:
    """Rows a caller already locked (in order) and what it read under the locks."""

    invoice_status: Mapping[int, str]
    cases: Mapping[int, LockedCase]


def lock_for_settlements(
    settlements: Sequence[Settlement],
    *,
    more_case_ids: Sequence[int] = (),
    more_invoice_ids: Sequence[int] = (),
) -> Locks:
    """Lock the invoices a success may pay (and ``more_invoice_ids``), then every case involved."""
    paying = [s.invoice_id for s in settlements if s.result is not None and s.result.succeeded]
    invoice_status = invoices_lock(invoice_ids=[*paying, *more_invoice_ids])
    case_ids = [s.case.pk for s in settlements if s.case is not None]
    return Locks(invoice_status, cases_lock(case_ids=[*case_ids, *more_case_ids]))


def refreshed(settlements: Sequence[Settlement], locks: Locks) -> list[Settlement]:
    """Settlements whose case was written since it was read get the fresh copy (read under the lock).

    The caller's plan for such a case was made from old facts: the attempt's result still applies (it is
    money), but the case's next step moves only if nobody else moved it meanwhile.
    """
    stale = [
        s.case.pk
        for s in settlements
        if s.case is not None
        and s.case.pk in locks.cases
        and locks.cases[s.case.pk].version != loaded_version(s.case)
    ]
    fresh = (
        {
            case.pk: case
            for case in DunningCase.objects.select_related("customer", "invoice").filter(pk__in=stale)
        }
        if stale
        else {}
    )
    result = []
    for s in settlements:
        if s.case is None:
            result.append(s)
            continue
        if s.case.pk not in fresh:
            # A copy: this call's changes never reach the caller's object, so a transaction that runs again
            # after a deadlock starts from the case as it was read (a retry is counted once).
            result.append(replace(s, case=_copy(s.case)))
            continue
        case = fresh[s.case.pk]
        same_position = case.next_step_index == s.case.next_step_index
        result.append(
            replace(
                s,
                case=case,
                next_on_failure=s.next_on_failure if same_position else None,
                retry_step=s.retry_step if same_position else None,
            )
        )
    return result


def _copy(case: DunningCase) -> DunningCase:
    """A shallow copy of a case: its own field values, the same cached relations (``copy.copy`` goes through
    pickling and cost a tenth of a tick batch)."""
    clone = DunningCase.__new__(DunningCase)
    clone.__dict__.update(case.__dict__)
    return clone


def _sync_charged_methods(settlements: Sequence[Settlement], actor: Actor) -> dict[int, int]:
    """When the gateway charged another method than our copy (its current default), record that method
    here as the customer's default; returns {attempt id: the charged method's id}."""
    differing = [
        s
        for s in settlements
        if s.result is not None
        and s.result.payment_method is not None
        and s.result.payment_method.gateway_payment_method_id
    ]
    if not differing:
        return {}
    known = dict(
        PaymentMethod.objects.filter(
            pk__in=[s.payment_method_id for s in differing if s.payment_method_id]
        ).values_list("pk", "gateway_payment_method_id")
    )
    customers = dict(
        Invoice.objects.filter(pk__in=[s.invoice_id for s in differing]).values_list("pk", "customer_id")
    )
    charged: dict[int, int] = {}
    for s in differing:
        details = s.result.payment_method  # type: ignore[union-attr]
        assert details is not None
        if known.get(s.payment_method_id) == details.gateway_payment_method_id:
            continue
        method, _ = payment_method_save(
            customer=Customer.objects.get(pk=customers[s.invoice_id]),
            actor=actor,
            gateway_payment_method_id=details.gateway_payment_method_id,
            type=details.type,
            brand=details.brand,
            last4=details.last4,
            exp_month=details.exp_month,
            exp_year=details.exp_year,
            funding=details.funding,
            country=details.country,
            make_default=True,
        )
        charged[s.attempt_id] = method.pk
    return charged


def settle_attempts(
    *,
    settlements: Sequence[Settlement],
    table: DeclineTable,
    actor: Actor,
    now: datetime,
    events: EventBuffer,
    extra_cases: Sequence[DunningCase] = (),
    extra_transitions: Mapping[int, Transition] | None = None,
    locks: Locks | None = None,
) -> tuple[Counter[str], set[int]]:
    """Write results for attempts that are pending or unknown. Call inside a transaction.

    ``extra_cases`` (with ``extra_transitions``) are other modified cases to save in the same statement,
    so a tick batch updates all its cases at once; the caller has checked they are current. ``locks``:
    the caller already holds the locks (:func:`lock_for_settlements`). Returns counts by outcome and the
    ids of saved cases.
    """
    counts: Counter[str] = Counter()
    if not settlements and not extra_cases:
        return counts, set()
    if locks is None:
        locks = lock_for_settlements(settlements, more_case_ids=[case.pk for case in extra_cases])
    settlements = refreshed(settlements, locks)
    cases: dict[int, DunningCase] = {case.pk: case for case in extra_cases}
    transitions: dict[int, Transition] = dict(extra_transitions or {})
    decline_codes_record_seen(
        seen=[
            normalise(s.result.decline_processor, s.result.decline_code)
            for s in settlements
            if s.result is not None
            and not s.result.succeeded
            and s.result.decline_processor != INTERNAL_PROCESSOR
        ],
        table=table,
        now=now,
    )
    charged_methods = _sync_charged_methods(settlements, actor)
    settlements = [
        replace(s, payment_method_id=charged_methods[s.attempt_id]) if s.attempt_id in charged_methods else s
        for s in settlements
    ]
    statuses, classifications = _attempt_statuses(settlements, locks, table)
    settled = _write_final_results(settlements, statuses, classifications, now)
    released = _write_unknown_results([s for s in settlements if s.result is None])

    paying = [
        s
        for s in settlements
        if s.attempt_id in settled and statuses[s.attempt_id] == AttemptStatus.SUCCEEDED
    ]
    paid_now = set(
        invoices_close_many(
            invoice_ids=[s.invoice_id for s in paying],
            status=InvoiceStatus.PAID,
            actor=actor,
            reason="payment succeeded",
            now=now,
            details_by_invoice={
                s.invoice_id: {"attempt_id": s.attempt_id, "reference": s.result.gateway_reference}  # type: ignore[union-attr]
                for s in paying
            },
            audit=events.audit,
        )
    )
    duplicates = [
        s
        for s in settlements
        if s.attempt_id in settled and statuses[s.attempt_id] == AttemptStatus.DUPLICATE
    ]
    double_payments_flag(
        duplicates=duplicates, invoice_status=locks.invoice_status, actor=actor, now=now, events=events
    )
    counts["double_payment"] += len(duplicates)

    retry_failed: list[tuple[Settlement, DunningCase]] = []
    for s in settlements:
        if s.attempt_id not in settled and s.attempt_id not in released:
            counts[f"{s.source}.already_settled"] += 1
            continue
        status = statuses.get(s.attempt_id, AttemptStatus.UNKNOWN)
        counts[f"{s.source}.{status}"] += 1
        case = s.case
        if case is None:
            continue
        cases[case.pk] = case
        details = {"attempt_id": s.attempt_id, "source": s.source}
        if s.reconciling:
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.ATTEMPT_RECONCILED,
                actor=actor,
                at=now,
                reason="settled from the gateway's answer or records",
                details={**details, "outcome": str(status)},
            )
        if s.counts_as_retry:
            case.retry_count += 1
        if status == AttemptStatus.SUCCEEDED:
            _record_success(s, case, paid_now, transitions, counts, actor=actor, now=now, events=events)
        elif status == AttemptStatus.DUPLICATE:
            case.needs_staff_review = True
        elif status == AttemptStatus.FAILED:
            if _record_failure(
                s,
                case,
                classifications[s.attempt_id],
                transitions,
                counts,
                actor=actor,
                now=now,
                events=events,
            ):
                retry_failed.append((s, case))
        else:
            _record_unknown(s, case, actor=actor, now=now, events=events)

    saved = cases_save(
        cases=list(cases.values()), actor=actor, now=now, events=events, transitions=transitions
    )
    lost = set(cases) - saved
    if lost:  # every case was locked (or SQLite, one writer): nobody can have written them meanwhile
        raise RuntimeError(f"cases {sorted(lost)} changed under their lock")
    effects.cases_closed(
        cases=[cases[i] for i in transitions if i in saved],
        actor=actor,
        now=now,
        events=events,
        more_webhooks=[
            communication.OutboundEvent(
                event_type="payment.retry_failed",
                event_id=f"payment.retry_failed:{s.attempt_id}",
                payload={**effects.case_payload(case), "attempt_id": s.attempt_id},
                occurred_at=now,
            )
            for s, case in retry_failed
        ],
    )
    return counts, saved


def _attempt_statuses(
    settlements: Sequence[Settlement], locks: Locks, table: DeclineTable
) -> tuple[dict[int, str], dict[int, Classification]]:
    statuses: dict[int, str] = {}
    classifications: dict[int, Classification] = {}
    for s in settlements:
        if s.result is None:
            continue
        if s.result.succeeded:
            # The invoice's status under its lock: something else paid (or closed) it first.
            open_now = locks.invoice_status.get(s.invoice_id) in (InvoiceStatus.OPEN, InvoiceStatus.DRAFT)
            statuses[s.attempt_id] = AttemptStatus.SUCCEEDED if open_now else AttemptStatus.DUPLICATE
        else:
            statuses[s.attempt_id] = AttemptStatus.FAILED
            classifications[s.attempt_id] = table.lookup(
                *normalise(s.result.decline_processor, s.result.decline_code)
            )
    return statuses, classifications


def _final_row(
    s: Settlement, status: str, classification: Classification | None, now: datetime
) -> dict[str, object]:
    assert s.result is not None
    return {
        "status": status,
        "gateway_reference": s.result.gateway_reference,
        "decline_processor": classification.processor if classification else "",
        "decline_code": classification.code if classification else "",
        "decline_category": classification.category if classification else "",
        "message": s.result.message[:500],
        "completed_at": now,
        "processed": s.result.processed,
        "payment_method": s.payment_method_id,
        "claimed_until": None,
        "claim_token": "",
    }


def _write_final_results(
    settlements: Sequence[Settlement],
    statuses: dict[int, str],
    classifications: Mapping[int, Classification],
    now: datetime,
) -> set[int]:
    """Update attempts with a final result while it is still open; returns the ids really settled.

    A processor's answer also replaces an earlier settlement that was not one (a refusal, "no record"):
    a late real result is always recorded. ``statuses`` is corrected where a success had to become a
    double payment.
    """
    rows = {
        s.attempt_id: _final_row(s, statuses[s.attempt_id], classifications.get(s.attempt_id), now)
        for s in settlements
        if s.result is not None
    }
    if not rows:
        return set()
    settled = set(
        update_from_values(
            PaymentAttempt,
            rows,
            fields=ATTEMPT_RESULT_FIELDS,
            guard_sql="t.status IN (%s, %s)",
            guard_params=list(IN_FLIGHT_STATUSES),
        )
    )
    late = {pk: row for pk, row in rows.items() if pk not in settled and row["processed"]}
    for pk, row in late.items():
        try:
            with transaction.atomic():
                settled.update(_overwrite_unprocessed(pk, row))
        except IntegrityError:
            # Money moved while another charge of the invoice is live: a double payment for staff.
            statuses[pk] = AttemptStatus.DUPLICATE
            settled.update(_overwrite_unprocessed(pk, {**row, "status": AttemptStatus.DUPLICATE}))
    return settled


def _overwrite_unprocessed(pk: int, row: dict[str, object]) -> list[int]:
    return update_from_values(
        PaymentAttempt,
        {pk: row},
        fields=ATTEMPT_RESULT_FIELDS,
        guard_sql="t.status = %s AND NOT t.processed",
        guard_params=[AttemptStatus.FAILED],
    )


def _write_unknown_results(settlements: Sequence[Settlement]) -> set[int]:
    """Unknown outcomes: the attempt stays to reconcile, its claim released, if the claim is still ours."""
    rows = {
        s.attempt_id: {
            "status": AttemptStatus.UNKNOWN,
            "message": s.error[:500],
            "claimed_until": None,
            "claim_token": "",
        }
        for s in settlements
    }
    if not rows:
        return set()
    return set(
        update_from_values(
            PaymentAttempt,
            rows,
            fields=ATTEMPT_UNKNOWN_FIELDS,
            match={"claim_token": {s.attempt_id: s.claim_token for s in settlements}},
            guard_sql="t.status IN (%s, %s)",
            guard_params=list(IN_FLIGHT_STATUSES),
        )
    )


def _record_success(
    s: Settlement,
    case: DunningCase,
    paid_now: set[int],
    transitions: dict[int, Transition],
    counts: Counter[str],
    *,
    actor: Actor,
    now: datetime,
    events: EventBuffer,
) -> None:
    details = {"attempt_id": s.attempt_id, "source": s.source}
    events.add(
        case_id=case.pk,
        kind=CaseEventKind.ATTEMPT_SUCCEEDED,
        actor=actor,
        at=now,
        details=details,
        step_index=s.retry_step,
    )
    if s.invoice_id in paid_now and case.state in RECOVERABLE_STATES:
        transitions[case.pk] = recovery_transition(
            case,
            channel=s.channel or CHANNEL_BY_SOURCE[s.source],
            amount_minor=s.amount_minor,
            now=now,
            reason="payment succeeded",
            details=details,
        )
        counts["recovered"] += 1


def _record_failure(
    s: Settlement,
    case: DunningCase,
    classification: Classification,
    transitions: dict[int, Transition],
    counts: Counter[str],
    *,
    actor: Actor,
    now: datetime,
    events: EventBuffer,
) -> bool:
    """Apply a decline (or a refusal) to the case; True when it was a tick retry that failed."""
    assert s.result is not None
    details = {"attempt_id": s.attempt_id, "source": s.source}
    processed = s.result.processed
    events.add(
        case_id=case.pk,
        kind=CaseEventKind.ATTEMPT_FAILED if processed else CaseEventKind.ATTEMPT_NOT_PROCESSED,
        actor=actor,
        at=now,
        step_index=s.retry_step,
        reason=f"{classification.code} ({classification.category})"
        if processed
        else f"not processed: {s.result.message or classification.code}",
        details=details,
    )
    if case.state not in (CaseState.OPEN, CaseState.PAUSED):
        return False
    if processed:
        # Only the bank's declines change what the case knows about the card; a refusal before sending
        # says nothing about it.
        case.decline_code, case.decline_category = classification.code, classification.category
        case.last_failure_at = now
        if classification.category in BLOCKING_CATEGORIES:
            case.hard_declined_payment_method_id = s.payment_method_id
        if classification.category == DeclineCategory.FRAUD:
            case.needs_staff_review = True
    if s.reconciling and case.state == CaseState.OPEN:
        # The tick re-plans the case soon; a consumed retry step is not run again (see planning).
        soon = timedelta(minutes=settings.DUNNING_PROCESSING_RETRY_MINUTES)
        due = now + soon if processed and classification.category == DeclineCategory.PROCESSING else now
        case.next_action_at = min(case.next_action_at, due) if case.next_action_at else due
    if s.next_on_failure is not None:
        case.next_step_index, case.next_action_at = s.next_on_failure
        if case.next_action_at is None and case.state == CaseState.OPEN:
            transitions[case.pk] = Transition(
                machine.Event.EXHAUST, reason="no steps left after a failed retry"
            )
            counts["exhausted"] += 1
    return s.source == AttemptSource.RETRY and processed


def _record_unknown(
    s: Settlement, case: DunningCase, *, actor: Actor, now: datetime, events: EventBuffer
) -> None:
    events.add(
        case_id=case.pk,
        kind=CaseEventKind.ATTEMPT_UNKNOWN,
        actor=actor,
        at=now,
        step_index=s.retry_step,
        reason=s.error or "no answer from the gateway",
        details={"attempt_id": s.attempt_id, "source": s.source},
    )
    if case.state == CaseState.OPEN:
        if s.retry_step is not None:
            case.next_step_index = s.retry_step
        # The next tick asks the gateway for the truth before anything else.
        case.next_action_at = now
