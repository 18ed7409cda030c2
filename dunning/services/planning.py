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


@dataclass(frozen=True)
class VersionRules:
    steps: Sequence[dict[str, Any]]
    max_retries: int
    network_retry_cap: int


@dataclass
class CasePlan:
    """Steps to run now, steps skipped (with why), at most one retry, and where the case goes next."""

    run: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    retry_step: int | None = None
    next_step_index: int = 0
    next_action_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """No step left to wait for and no retry in flight: the case is exhausted."""
        return self.next_action_at is None and self.retry_step is None


def step_time(rules: VersionRules, snapshot: CaseSnapshot, index: int) -> datetime:
    step = rules.steps[index]
    return step_due_at(
        opened_at=snapshot.opened_at,
        day_offset=step["day_offset"],
        local_hour=step.get("local_hour"),
        time_zone=snapshot.time_zone,
        shift=snapshot.schedule_shift,
    )


def retry_blocker(rules: VersionRules, snapshot: CaseSnapshot) -> str:
    """Why a retry may not run now, or "" when it may."""
    category = snapshot.decline_category
    if snapshot.gateway_owns_retries:
        return "the gateway's own retries (Stripe Smart Retries) own this invoice"
    if snapshot.default_payment_method_id is None:
        return "no payment method on file"
    if category in (DeclineCategory.HARD, DeclineCategory.FRAUD) and (
        snapshot.hard_declined_payment_method_id in (None, snapshot.default_payment_method_id)
    ):
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
    index = snapshot.next_step_index
    steps = rules.steps
    while index < len(steps):
        if step_time(rules, snapshot, index) > now:
            break
        step = steps[index]
        categories = step.get("decline_categories") or []
        # No decline on record (a new payment method cleared it) counts as soft: worth a retry.
        if categories and (snapshot.decline_category or DeclineCategory.SOFT) not in categories:
            plan.skipped.append((index, f"only for {', '.join(categories)} declines"))
        elif step["action"] == StepAction.RETRY:
            blocker = retry_blocker(rules, snapshot)
            if blocker:
                plan.skipped.append((index, blocker))
            else:
                plan.retry_step = index
                index += 1
                break
        else:
            plan.run.append(index)
        index += 1
    plan.next_step_index = index
    plan.next_action_at = step_time(rules, snapshot, index) if index < len(steps) else None
    return plan


def after_failed_retry(
    rules: VersionRules,
    snapshot: CaseSnapshot,
    plan: CasePlan,
    *,
    category: str,
    now: datetime,
    soon: timedelta,
) -> tuple[int, datetime | None]:
    """Where a case goes after its retry failed: (next step index, next action time).

    A processing error is retried soon (the same retry step again, still within the caps); anything else
    moves on to the next step.
    """
    assert plan.retry_step is not None
    if category == DeclineCategory.PROCESSING and snapshot.retry_count + 1 < rules.max_retries:
        return plan.retry_step, now + soon
    return plan.next_step_index, plan.next_action_at
