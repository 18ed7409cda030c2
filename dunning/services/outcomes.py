"""Recording what the gateway said, for many attempts at once.

The tick, single charges (staff, portal, card updates) and reconciliation all end here, so an attempt's
result always has the same consequences: the attempt row, the invoice, the case, events and webhooks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from customers.actors import Actor
from customers.bulk import update_from_values
from customers.models import InvoiceStatus
from customers.services import invoices_close_many
from dunning import state as machine
from dunning.gateways import ChargeResult
from dunning.models import (
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
from dunning.services.cases import Transition, cases_save, recovery_transition
from dunning.services.declines import DeclineTable, decline_codes_record_seen, normalise
from dunning.services.events import EventBuffer

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
)
# Where the money could still come back: a late success recovers these too.
RECOVERABLE_STATES = machine.sources_for(machine.Event.RECOVER)


@dataclass
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
    counts_as_retry: bool = False
    next_on_failure: tuple[int, datetime | None] | None = None
    # For a tick retry: the step that made it. An unknown outcome puts the case back on that step.
    retry_step: int | None = None
    # Settling an earlier unknown tick retry: the case sits on its retry step (see above).
    reconciling: bool = False


def settle_attempts(
    *,
    settlements: Sequence[Settlement],
    table: DeclineTable,
    actor: Actor,
    now: datetime,
    events: EventBuffer,
    extra_cases: Sequence[DunningCase] = (),
    extra_transitions: Mapping[int, Transition] | None = None,
) -> tuple[Counter[str], set[int]]:
    """Write results for attempts that are pending or unknown. Call inside a transaction.

    ``extra_cases`` (with ``extra_transitions``) are other modified cases to save in the same statement,
    so a tick batch updates all its cases at once. Returns counts by outcome and the ids of saved cases.
    """
    counts: Counter[str] = Counter()
    cases: dict[int, DunningCase] = {case.pk: case for case in extra_cases}
    transitions: dict[int, Transition] = dict(extra_transitions or {})
    if not settlements and not cases:
        return counts, set()
    decline_codes_record_seen(
        seen=[
            normalise(s.result.decline_processor, s.result.decline_code)
            for s in settlements
            if s.result is not None and not s.result.succeeded
        ],
        table=table,
        now=now,
    )
    attempt_rows: dict[int, dict[str, object]] = {}
    classifications = {}
    for s in settlements:
        row: dict[str, object] = {
            "status": AttemptStatus.UNKNOWN,
            "gateway_reference": "",
            "decline_processor": "",
            "decline_code": "",
            "decline_category": "",
            "message": s.error[:500],
            "completed_at": None,
        }
        if s.result is not None:
            row.update(
                gateway_reference=s.result.gateway_reference, completed_at=now, message=s.result.message[:500]
            )
            if s.result.succeeded:
                row["status"] = AttemptStatus.SUCCEEDED
            else:
                classification = table.lookup(*normalise(s.result.decline_processor, s.result.decline_code))
                classifications[s.attempt_id] = classification
                row.update(
                    status=AttemptStatus.FAILED,
                    decline_processor=classification.processor,
                    decline_code=classification.code,
                    decline_category=classification.category,
                )
        attempt_rows[s.attempt_id] = row
    succeeded = [s for s in settlements if s.result is not None and s.result.succeeded]
    paid_now = set(
        invoices_close_many(
            invoice_ids=[s.invoice_id for s in succeeded],
            status=InvoiceStatus.PAID,
            actor=actor,
            reason="payment succeeded",
            now=now,
            details_by_invoice={
                s.invoice_id: {"attempt_id": s.attempt_id, "reference": s.result.gateway_reference}  # type: ignore[union-attr]
                for s in succeeded
            },
            audit=events.audit,
        )
    )

    retry_failed: list[tuple[Settlement, DunningCase]] = []
    for s in settlements:
        case = s.case
        outcome = attempt_rows[s.attempt_id]["status"]
        counts[f"{s.source}.{outcome}"] += 1
        if case is None:
            continue
        cases[case.pk] = case
        if s.counts_as_retry:
            case.retry_count += 1
        case.claimed_until = None
        details = {"attempt_id": s.attempt_id, "source": s.source}
        step = s.retry_step
        if outcome == AttemptStatus.SUCCEEDED:
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.ATTEMPT_SUCCEEDED,
                actor=actor,
                at=now,
                details=details,
                step_index=step,
            )
            if s.invoice_id not in paid_now:
                # Paid by another route at the same moment: money may have moved twice. Staff must look.
                case.needs_staff_review = True
                events.add(
                    case_id=case.pk,
                    kind=CaseEventKind.NOTE,
                    actor=actor,
                    at=now,
                    reason="charge succeeded but the invoice was already closed: check for a double payment",
                    details=details,
                )
            elif case.state in RECOVERABLE_STATES:
                transitions[case.pk] = recovery_transition(
                    case,
                    channel=s.channel or CHANNEL_BY_SOURCE[s.source],
                    amount_minor=s.amount_minor,
                    now=now,
                    reason="payment succeeded",
                    details=details,
                )
                counts["recovered"] += 1
        elif outcome == AttemptStatus.FAILED:
            classification = classifications[s.attempt_id]
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.ATTEMPT_FAILED,
                actor=actor,
                at=now,
                step_index=step,
                reason=f"{classification.code} ({classification.category})",
                details=details,
            )
            if case.state not in (CaseState.OPEN, CaseState.PAUSED):
                continue
            case.decline_code, case.decline_category = classification.code, classification.category
            if classification.category in (DeclineCategory.HARD, DeclineCategory.FRAUD):
                case.hard_declined_payment_method_id = s.payment_method_id
            if classification.category == DeclineCategory.FRAUD:
                case.needs_staff_review = True
            if s.reconciling and s.source == AttemptSource.RETRY and case.state == CaseState.OPEN:
                # Nothing charged (or a processing error): retry that step soon. A real decline: move on.
                if classification.category == DeclineCategory.PROCESSING:
                    soon = timedelta(minutes=settings.DUNNING_PROCESSING_RETRY_MINUTES)
                    case.next_action_at = now + soon
                else:
                    case.next_step_index, case.next_action_at = case.next_step_index + 1, now
            if s.next_on_failure is not None:
                case.next_step_index, case.next_action_at = s.next_on_failure
                if case.next_action_at is None and case.state == CaseState.OPEN:
                    transitions[case.pk] = Transition(
                        machine.Event.EXHAUST, reason="no steps left after a failed retry"
                    )
                    counts["exhausted"] += 1
            if s.source == AttemptSource.RETRY:
                retry_failed.append((s, case))
        else:
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.ATTEMPT_UNKNOWN,
                actor=actor,
                at=now,
                step_index=step,
                reason=s.error or "no answer from the gateway",
                details=details,
            )
            if case.state == CaseState.OPEN:
                if s.retry_step is not None:
                    case.next_step_index = s.retry_step
                # The next tick asks the gateway for the truth before anything else.
                case.next_action_at = now

    saved = cases_save(
        cases=list(cases.values()), actor=actor, now=now, events=events, transitions=transitions
    )
    # Only attempts still in flight take a result: a result is never written twice. Locks are taken
    # in one order on every path (invoice, then case, then attempt), so racing charges cannot deadlock.
    update_from_values(
        PaymentAttempt,
        attempt_rows,
        fields=ATTEMPT_RESULT_FIELDS,
        guard_sql="t.status IN (%s, %s)",
        guard_params=[AttemptStatus.PENDING, AttemptStatus.UNKNOWN],
    )

    closed = [cases[i] for i in transitions if i in saved]
    effects.cases_closed(
        cases=closed,
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
            if case.pk in saved
        ],
    )
    return counts, saved
