"""Cases: the one writer of case rows, opening a case for a failed invoice, and recovering cases.

``cases_save`` is the only code that updates a DunningCase after it is created. It checks every state
change against the pure transition table in ``dunning.state``, guards each row with the version it was
read at (so a concurrent change of any column wins and is never overwritten from a stale copy; the loser
re-reads and re-plans), and writes a CaseEvent for every transition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from customers.actors import Actor
from customers.bulk import update_from_values
from customers.models import Invoice, InvoiceStatus, PaymentMethod
from dunning import state as machine
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    CaseState,
    DeclineCategory,
    DunningCase,
    PaymentAttempt,
)
from dunning.services import effects
from dunning.services.declines import decline_classify
from dunning.services.events import EventBuffer
from dunning.services.policies import policy_version_select

# Every column a case update may touch. The writer always writes them all, from the loaded instance.
CASE_MUTABLE_FIELDS: tuple[str, ...] = (
    "state",
    "next_step_index",
    "next_action_at",
    "retry_count",
    "paused_at",
    "schedule_shift_seconds",
    "claimed_until",
    "decline_code",
    "decline_category",
    "last_failure_at",
    "retry_timing",
    "hard_declined_payment_method",
    "needs_staff_review",
    "recovered_at",
    "recovery_channel",
    "recovered_amount_minor",
    "closed_at",
    "updated_at",
)


# Foreign keys are written by id: the attribute may hold an unsaved or stale related object.
_ATTNAMES = {name: DunningCase._meta.get_field(name).attname for name in CASE_MUTABLE_FIELDS}
_WRITTEN_FIELDS = (*CASE_MUTABLE_FIELDS, "version")


def loaded_version(case: DunningCase) -> int:
    """The version the case was read at (what its next write must still find)."""
    version = getattr(case, "loaded_version", None)
    return case.version if version is None else version


@dataclass(frozen=True)
class Transition:
    event: str
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


def _apply_transition(case: DunningCase, to_state: str, now: datetime) -> None:
    """Bookkeeping that always goes with entering a state."""
    if to_state == CaseState.PAUSED:
        case.paused_at = now
    elif to_state == CaseState.OPEN and case.paused_at is not None:
        paused_for = now - case.paused_at
        case.schedule_shift_seconds += int(paused_for.total_seconds())
        if case.next_action_at is not None:
            case.next_action_at += paused_for
        # A smart slot chosen before the pause is stale: the tick picks again in the shifted window.
        case.retry_timing = {}
        case.paused_at = None
    if to_state not in (CaseState.OPEN, CaseState.PAUSED):
        case.closed_at = now
        case.next_action_at = None
        case.claimed_until = None
        case.paused_at = None


def cases_save(
    *,
    cases: Sequence[DunningCase],
    actor: Actor,
    now: datetime,
    events: EventBuffer,
    transitions: Mapping[int, Transition] | None = None,
) -> set[int]:
    """Write the given (already modified) cases in one statement; apply ``transitions`` first.

    A refused transition raises ``dunning.state.TransitionRefused`` before anything is written. Rows written
    by anyone since they were read (their version moved on) are left alone and missing from the returned
    set of saved ids: the caller re-reads them and decides again.
    """
    transitions = transitions or {}
    rows: dict[int, dict[str, Any]] = {}
    expected: dict[int, int] = {}
    states: dict[int, str] = {}
    moves: dict[int, tuple[str, str]] = {}
    for case in cases:
        loaded = getattr(case, "loaded_state", case.state)
        transition = transitions.get(case.pk)
        if transition is not None:
            to_state = machine.next_state(loaded, transition.event)
            case.state = to_state
            _apply_transition(case, to_state, now)
            moves[case.pk] = (loaded, to_state)
        case.updated_at = now
        states[case.pk] = loaded
        expected[case.pk] = loaded_version(case)
        rows[case.pk] = {name: getattr(case, _ATTNAMES[name]) for name in CASE_MUTABLE_FIELDS}
        rows[case.pk]["version"] = expected[case.pk] + 1
    saved = set(update_from_values(DunningCase, rows, fields=_WRITTEN_FIELDS, match={"version": expected}))
    for case in cases:
        if case.pk not in saved:
            case.state = states[case.pk]
            continue
        case.version = case.loaded_version = expected[case.pk] + 1
        case.loaded_state = case.state
        if case.pk in moves:
            transition = transitions[case.pk]
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.STATE_CHANGED,
                actor=actor,
                at=now,
                from_state=moves[case.pk][0],
                to_state=moves[case.pk][1],
                reason=transition.reason,
                details=dict(transition.details),
            )
    return saved


def case_save_one(
    *, case: DunningCase, actor: Actor, now: datetime, transition: Transition | None = None
) -> bool:
    """``cases_save`` for a single case, flushing its events at once."""
    events = EventBuffer()
    saved = cases_save(
        cases=[case],
        actor=actor,
        now=now,
        events=events,
        transitions={case.pk: transition} if transition else {},
    )
    events.flush()
    return case.pk in saved


def next_attempt_number(invoice: Invoice) -> int:
    return (PaymentAttempt.objects.filter(invoice=invoice).aggregate(n=Max("number"))["n"] or 0) + 1


def invoice_payment_failed(
    *,
    invoice: Invoice,
    actor: Actor,
    decline_code: str = "",
    decline_processor: str = "stripe",
    payment_method: PaymentMethod | None = None,
    gateway: str = "",
    gateway_reference: str = "",
    failed_at: datetime | None = None,
    message: str = "",
) -> DunningCase | None:
    """A charge of ``invoice`` failed (reported by the billing system or a webhook): open or advance its case.

    One case per invoice: a second report records the failure on the existing case. A report for an
    invoice that is already paid, void or uncollectible changes nothing and returns None. Reports carrying
    a gateway reference already recorded are duplicates and change nothing either.
    """
    now = timezone.now()
    failed_at = failed_at or now
    with transaction.atomic():
        invoice = (
            Invoice.objects.select_for_update(no_key=True, of=("self",))
            .select_related("customer")
            .get(pk=invoice.pk)
        )
        if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
            return None
        if (
            gateway_reference
            and PaymentAttempt.objects.filter(invoice=invoice, gateway_reference=gateway_reference).exists()
        ):
            return DunningCase.objects.filter(invoice=invoice).first()
        method = payment_method or invoice.customer.payment_methods.filter(is_default=True).first()
        classification = decline_classify(processor=decline_processor, code=decline_code, now=now)
        case = (
            DunningCase.objects.select_for_update(no_key=True, of=("self",)).filter(invoice=invoice).first()
        )
        events = EventBuffer()
        blocks_method = classification.category in (DeclineCategory.HARD, DeclineCategory.FRAUD)
        if case is None:
            version = policy_version_select(invoice=invoice, payment_method=method)
            case = DunningCase.objects.create(
                invoice=invoice,
                customer=invoice.customer,
                policy_version=version,
                amount_minor=invoice.amount_due_minor - invoice.amount_paid_minor,
                currency=invoice.currency,
                opened_at=failed_at,
                next_action_at=failed_at,
                decline_code=classification.code,
                first_decline_code=classification.code,
                last_failure_at=failed_at,
                decline_category=classification.category,
                hard_declined_payment_method=method if blocks_method else None,
                needs_staff_review=classification.category == DeclineCategory.FRAUD,
            )
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.OPENED,
                actor=actor,
                at=failed_at,
                reason=f"payment failed: {classification.code} ({classification.category})",
                details={"policy": str(version), "policy_version_id": version.pk},
            )
            effects.case_opened(case=case, actor=actor, now=now)
        else:
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.FAILURE_REPORTED,
                actor=actor,
                at=now,
                reason=f"another failure reported: {classification.code} ({classification.category})",
            )
            if case.is_active:
                case.decline_code, case.decline_category = classification.code, classification.category
                if blocks_method:
                    case.hard_declined_payment_method = method
                case.needs_staff_review = case.needs_staff_review or (
                    classification.category == DeclineCategory.FRAUD
                )
                cases_save(cases=[case], actor=actor, now=now, events=events)
        PaymentAttempt.objects.create(
            invoice=invoice,
            case=case,
            payment_method=method,
            number=next_attempt_number(invoice),
            source=AttemptSource.INITIAL,
            status=AttemptStatus.FAILED,
            amount_minor=invoice.amount_due_minor - invoice.amount_paid_minor,
            currency=invoice.currency,
            gateway=gateway,
            gateway_reference=gateway_reference,
            decline_processor=classification.processor,
            decline_code=classification.code,
            decline_category=classification.category,
            message=message[:500],
            created_at=failed_at,
            completed_at=failed_at,
        )
        events.flush()
    return case


@dataclass(frozen=True)
class Recovery:
    case: DunningCase
    channel: str
    amount_minor: int


def recovery_transition(
    case: DunningCase,
    *,
    channel: str,
    amount_minor: int,
    now: datetime,
    reason: str,
    details: Mapping[str, Any] | None = None,
) -> Transition:
    """Record how and how much came back on ``case``; the returned transition is for ``cases_save``.

    Every recovery path records the channel and amount through here, at the moment it happens.
    """
    case.recovered_at = now
    case.recovery_channel = channel
    case.recovered_amount_minor = amount_minor
    return Transition(machine.Event.RECOVER, reason=reason, details=details or {})


def cases_recover(
    *, recoveries: Sequence[Recovery], actor: Actor, now: datetime, events: EventBuffer
) -> set[int]:
    """Recover cases (the invoice is paid): record channel and amount, close, and undo the dunning.

    Every recovery path uses this: silent retries, the portal, staff, card updates and payments outside.
    In the same transaction queued messages are cancelled, banners cleared and access restored.
    """
    by_id = {recovery.case.pk: recovery.case for recovery in recoveries}
    transitions = {
        recovery.case.pk: recovery_transition(
            recovery.case,
            channel=recovery.channel,
            amount_minor=recovery.amount_minor,
            now=now,
            reason=f"paid ({recovery.channel})",
        )
        for recovery in recoveries
    }
    saved = cases_save(
        cases=list(by_id.values()), actor=actor, now=now, events=events, transitions=transitions
    )
    effects.cases_closed(cases=[by_id[i] for i in saved], actor=actor, now=now, events=events)
    return saved
