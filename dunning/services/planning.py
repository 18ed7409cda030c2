"""What a due case does next. Pure: takes a snapshot, returns a plan; no database, no clock.

The tick builds a :class:`CaseSnapshot` per claimed case, calls :func:`plan_case`, then carries the plan
out in bulk. Keeping the decisions here makes them testable without a database (schedules across DST,
caps, hard declines, categories).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dunning.models import DeclineCategory, StepAction
from dunning.schedule import step_due_at

NETWORK_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class CaseSnapshot:
    opened_at: datetime
    time_zone: str
    schedule_shift: timedelta
    next_step_index: int
    retry_count: int
    decline_category: str
    hard_declined_payment_method_id: int | None
    default_payment_method_id: int | None
    network_attempts_30d: int
    # The gateway that issued the invoice retries it itself (STRIPE_RETRY_OWNER=stripe): we never do.
    gateway_owns_retries: bool = False
    # The highest retry step already carried out (its attempt settled, not a processing error worth
    # repeating): never run again, whatever a stale write or a crash did to the step pointer.
    last_retry_step: int | None = None
    # The slot chosen for a smart retry step: (step index, when, why it is skipped or "").
    smart_slot: tuple[int, datetime, str] | None = None


@dataclass(frozen=True)
class VersionRules:
    steps: Sequence[dict[str, Any]]
    max_retries: int
    network_retry_cap: int
    # Smart steps: a slot whose best estimate is below this (0..1) is skipped; slots keep this spacing.
    smart_min_success: float = 0.0
    min_spacing: timedelta = timedelta(hours=20)


@dataclass
class CasePlan:
    """Steps to run now, steps skipped (with why), at most one retry, and where the case goes next."""

    run: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    retry_step: int | None = None
    next_step_index: int = 0
    next_action_at: datetime | None = None
    # A smart retry step whose window has opened: the tick picks its slot (next_action_at is set then).
    choose_slot: int | None = None

    @property
    def finished(self) -> bool:
        """No step left to wait for and no retry in flight: the case is exhausted."""
        return self.next_action_at is None and self.retry_step is None and self.choose_slot is None


def is_smart(step: dict[str, Any]) -> bool:
    return step.get("timing") == "smart" and step["action"] == StepAction.RETRY


def step_time(rules: VersionRules, snapshot: CaseSnapshot, index: int) -> datetime:
    """When a step is due: its day and hour; for a smart retry, its chosen slot, or its window's start until
    a slot is chosen."""
    slot = snapshot.smart_slot
    if slot is not None and slot[0] == index and is_smart(rules.steps[index]):
        return slot[1]
    return window_start(rules, snapshot, index)


def window_start(rules: VersionRules, snapshot: CaseSnapshot, index: int) -> datetime:
    step = rules.steps[index]
    return step_due_at(
        opened_at=snapshot.opened_at,
        day_offset=step["day_offset"],
        local_hour=step.get("local_hour"),
        time_zone=snapshot.time_zone,
        shift=snapshot.schedule_shift,
    )


def smart_window(rules: VersionRules, snapshot: CaseSnapshot, index: int) -> tuple[datetime, datetime]:
    """A smart step's window: from its day and hour for ``window_days`` days, but never past the next
    step's time, so the steps after it are never held back by the slot."""
    start = window_start(rules, snapshot, index)
    end = start + timedelta(days=rules.steps[index].get("window_days") or 0)
    if index + 1 < len(rules.steps):
        end = min(end, max(start, window_start(rules, snapshot, index + 1)))
    return start, end


def retry_blocker(rules: VersionRules, snapshot: CaseSnapshot) -> str:
    """Why a retry may not run now, or "" when it may."""
    category = snapshot.decline_category
    blocked = snapshot.hard_declined_payment_method_id
    if snapshot.gateway_owns_retries:
        return "the gateway's own retries (Stripe Smart Retries) own this invoice"
    if snapshot.default_payment_method_id is None:
        return "no payment method on file"
    # The block is what counts, whatever decline came after it: only a new method lifts it.
    if blocked is not None and blocked == snapshot.default_payment_method_id:
        return "hard decline on this payment method: never retried on it"
    if category in (DeclineCategory.HARD, DeclineCategory.FRAUD) and blocked is None:
        return f"{category} decline: never retried on the same payment method"
    if category == DeclineCategory.AUTHENTICATION_REQUIRED:
        return "the bank asks the customer to authenticate: no off-session retry"
    if snapshot.retry_count >= rules.max_retries:
        return f"retry cap reached ({rules.max_retries})"
    if snapshot.network_attempts_30d >= rules.network_retry_cap:
        return f"card network cap reached ({snapshot.network_attempts_30d} attempts in 30 days)"
    return ""


def plan_case(rules: VersionRules, snapshot: CaseSnapshot, now: datetime) -> CasePlan:
    """Walk the due steps from the case's position.

    Steps not meant for the case's decline category are skipped. A retry that may not run (hard decline,
    caps, no card) is skipped too, so the remaining communication steps still happen and the case exhausts
    at the end. At most one retry runs per pass: its result decides what follows.
    """
    plan = CasePlan(next_step_index=snapshot.next_step_index)
    steps = rules.steps
    category = snapshot.decline_category or DeclineCategory.SOFT
    # The steps due now: [next_step_index, due_end).
    due_end = snapshot.next_step_index
    while due_end < len(steps) and step_time(rules, snapshot, due_end) <= now:
        due_end += 1
    superseded = _superseded_messages(steps, range(snapshot.next_step_index, due_end), category)
    index = snapshot.next_step_index
    while index < due_end:
        step = steps[index]
        if not _applies(step, category):
            plan.skipped.append((index, f"only for {', '.join(step['decline_categories'])} declines"))
        elif index in superseded:
            plan.skipped.append((index, f"late: step {superseded[index] + 1} is due too and says it now"))
        elif step["action"] == StepAction.RETRY and (
            snapshot.last_retry_step is not None and index <= snapshot.last_retry_step
        ):
            plan.skipped.append((index, "retry already carried out"))
        elif step["action"] == StepAction.RETRY:
            blocker = retry_blocker(rules, snapshot)
            slot = snapshot.smart_slot if is_smart(step) else None
            if slot is not None and slot[0] != index:
                slot = None
            if blocker:
                plan.skipped.append((index, blocker))
            elif slot is not None and slot[2]:
                plan.skipped.append((index, slot[2]))
            elif is_smart(step) and slot is None:
                # The window has opened: the tick picks the slot; the steps after wait for the retry.
                plan.choose_slot = index
                break
            else:
                plan.retry_step = index
                index += 1
                break
        else:
            plan.run.append(index)
        index += 1
    plan.next_step_index = index
    if plan.choose_slot is None:
        plan.next_action_at = step_time(rules, snapshot, index) if index < len(steps) else None
    return plan


def _applies(step: dict[str, Any], category: str) -> bool:
    # No decline on record (a new payment method cleared it) counts as soft: worth a retry.
    categories = step.get("decline_categories") or []
    return not categories or category in categories


# Customer-facing messages: when a tick comes late, only the last one that is due goes out.
MESSAGE_ACTIONS = (StepAction.EMAIL, StepAction.BANNER)


def _superseded_messages(steps: Sequence[dict[str, Any]], due: range, category: str) -> dict[int, int]:
    """Message steps that fell behind: {step index: the later step of the same kind, also due, that
    replaces it}. A late tick sends the one message that fits now (the final notice, not the three reminders
    before it) and records the others as skipped with the reason."""
    due_by_action: dict[str, list[int]] = {}
    for index in due:
        step = steps[index]
        if step["action"] in MESSAGE_ACTIONS and _applies(step, category):
            due_by_action.setdefault(step["action"], []).append(index)
    superseded: dict[int, int] = {}
    for indices in due_by_action.values():
        for index in indices[:-1]:
            superseded[index] = indices[-1]
    return superseded


def after_failed_retry(
    rules: VersionRules,
    snapshot: CaseSnapshot,
    plan: CasePlan,
    *,
    category: str,
    now: datetime,
    soon: timedelta,
    processed: bool = True,
) -> tuple[int, datetime | None]:
    """Where a case goes after its retry failed: (next step index, next action time).

    A processing error the processor reported is retried soon (the same retry step again, still within
    the caps); anything else, including a refusal before anything was sent, moves on to the next step.
    """
    assert plan.retry_step is not None
    if processed and category == DeclineCategory.PROCESSING and snapshot.retry_count + 1 < rules.max_retries:
        return plan.retry_step, now + soon
    return plan.next_step_index, plan.next_action_at
