"""Reads for the admin and reports: policy timelines and case timelines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F, QuerySet
from django.utils import timezone

from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEvent,
    CaseEventKind,
    CaseState,
    DunningCase,
    PaymentAttempt,
    StepAction,
)
from dunning.schedule import step_due_at
from notifications.models import Audience, Notification

ACTION_ICONS = {
    StepAction.RETRY: "↻",
    StepAction.EMAIL: "✉",
    StepAction.BANNER: "▭",
    StepAction.WEBHOOK: "⇢",
    StepAction.ESCALATE: "⚑",
    StepAction.DEGRADE: "◐",
    StepAction.SUSPEND: "⏸",
    StepAction.CANCEL: "✕",
    StepAction.MARK_UNCOLLECTIBLE: "∅",
}


@dataclass(frozen=True)
class TimelineEntry:
    index: int
    action: str
    label: str
    icon: str
    due_at: datetime
    local_time: str
    categories: Sequence[str]
    # Smart retries: the window and the slot the model would likely pick for a typical soft decline.
    smart_note: str = ""


@dataclass(frozen=True)
class TimelineDay:
    day: int
    date_label: str
    entries: Sequence[TimelineEntry]


def policy_timeline(
    *,
    steps: Sequence[dict[str, Any]],
    opened_at: datetime | None = None,
    time_zone: str = "UTC",
    shift: timedelta = timedelta(0),
) -> list[TimelineDay]:
    """A day-by-day strip of what a policy does to an invoice that failed at ``opened_at``.

    Every day from 0 to the last step appears, so the gaps between actions are visible.
    """
    opened_at = opened_at or timezone.now().replace(hour=15, minute=0, second=0, microsecond=0)
    zone = ZoneInfo(time_zone)
    by_day: dict[int, list[TimelineEntry]] = {}
    retries_before = 0
    for index, step in enumerate(steps):
        due = step_due_at(
            opened_at=opened_at,
            day_offset=step["day_offset"],
            local_hour=step.get("local_hour"),
            time_zone=time_zone,
            shift=shift,
        )
        template = f" · {step['template_key']}" if step.get("template_key") else ""
        by_day.setdefault(step["day_offset"], []).append(
            TimelineEntry(
                index=index,
                action=step["action"],
                label=f"{StepAction(step['action']).label}{template}",
                icon=ACTION_ICONS.get(step["action"], "•"),
                due_at=due,
                local_time=due.astimezone(zone).strftime("%H:%M"),
                categories=step.get("decline_categories") or [],
                smart_note=_smart_note(steps, index, opened_at, time_zone, shift, retries_before + 1)
                if step.get("timing") == "smart" and step["action"] == StepAction.RETRY
                else "",
            )
        )
        retries_before += step["action"] == StepAction.RETRY
    last = max(by_day, default=0)
    start_date = opened_at.astimezone(zone).date()
    return [
        TimelineDay(
            day=day,
            date_label=(start_date + timedelta(days=day)).strftime("%a %d %b"),
            entries=by_day.get(day, []),
        )
        for day in range(0, last + 1)
    ]


def _smart_note(
    steps: Sequence[dict[str, Any]],
    index: int,
    opened_at: datetime,
    time_zone: str,
    shift: timedelta,
    retry_number: int,
) -> str:
    """ "smart, days 1–3: likely Fri 09:00 (38 %)" for a typical case (insufficient funds, card of unknown
    funding, 50.00 in the policy's terms); real cases get their own slot when the window opens."""
    from dunning.services.planning import CaseSnapshot, VersionRules, smart_window
    from dunning.services.smart_timing import current_model
    from dunning.timing.features import RetryContext
    from dunning.timing.model import choose_slot

    snapshot = CaseSnapshot(
        opened_at=opened_at,
        time_zone=time_zone,
        schedule_shift=shift,
        next_step_index=index,
        retry_count=retry_number - 1,
        decline_category="soft",
        hard_declined_payment_method_id=None,
        default_payment_method_id=None,
        network_attempts_30d=0,
    )
    start, end = smart_window(VersionRules(steps, 20, 100), snapshot, index)
    context = RetryContext(
        decline_code="insufficient_funds",
        decline_category="soft",
        retry_number=retry_number,
        funding="unknown",
        brand="",
        amount_minor=5000,
        exponent=2,
        segment="",
        country="",
        time_zone=time_zone,
        last_failure_at=opened_at,
        payday=None,
    )
    choice = choose_slot(current_model(), context, window_start=start, window_end=end, fixed_at=start)
    zone = ZoneInfo(time_zone)
    # A window that ends at midnight ends with the day before.
    last_moment = max(start, end - timedelta(seconds=1))
    first = steps[index]["day_offset"]
    last = (last_moment.astimezone(zone).date() - opened_at.astimezone(zone).date()).days
    days = f"day {first}" if last <= first else f"days {first}–{last}"
    return f"smart, {days}: likely {choice.at.astimezone(zone):%a %H:%M} ({choice.estimate.p:.0%})"


@dataclass(frozen=True)
class CaseTimeline:
    events: QuerySet[CaseEvent]
    attempts: QuerySet[PaymentAttempt]
    upcoming: list[TimelineEntry]


def case_timeline(*, case: DunningCase) -> CaseTimeline:
    """Everything that happened to a case, with the attempts and the steps still to come."""
    events = case.events.select_related("actor_user").order_by("occurred_at", "id")
    attempts = case.invoice.payment_attempts.select_related("payment_method").order_by("number")
    upcoming: list[TimelineEntry] = []
    if case.is_active:
        days = policy_timeline(
            steps=case.policy_version.steps,
            opened_at=case.opened_at,
            time_zone=case.customer.time_zone,
            shift=timedelta(seconds=case.schedule_shift_seconds),
        )
        upcoming = [entry for day in days for entry in day.entries if entry.index >= case.next_step_index]
    return CaseTimeline(events=events, attempts=attempts, upcoming=upcoming)


@dataclass(frozen=True)
class RetryCounts:
    """A case's retries, counted the way the case page and the recovery report both show them.

    ``with_result``: attempts after the first failure that have a result (scheduled retries, staff, the
    portal, card updates), the reports' "retries with a result". ``scheduled``: the policy's own retries,
    counted against its cap (``cap``).
    """

    with_result: int
    scheduled: int
    cap: int


def case_retry_counts(*, case: DunningCase, attempts: Sequence[PaymentAttempt] | None = None) -> RetryCounts:
    """``attempts`` may be the case's attempts already loaded (the case page has them); else one query."""
    if attempts is None:
        attempts = list(case.attempts.all())
    settled = (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED)
    with_result = sum(
        1
        for attempt in attempts
        if attempt.case_id == case.pk
        and attempt.source != AttemptSource.INITIAL
        and attempt.status in settled
    )
    return RetryCounts(
        with_result=with_result, scheduled=case.retry_count, cap=case.policy_version.max_retries
    )


@dataclass(frozen=True)
class CustomerDunning:
    """The dunning side of a customer page: open cases, the last messages and the portal visits."""

    open_cases: list[DunningCase]
    messages: list[Notification]
    portal_visits: list[CaseEvent]


def customer_dunning(*, customer_id: int, limit: int = 10) -> CustomerDunning:
    """Three queries whatever the customer's history: active cases (with their invoice and policy), the
    latest customer messages with opens and clicks, and the latest visits to the payment portal."""
    from dunning.portal.services import PortalAction  # the portal's services import the engine's

    open_cases = list(
        DunningCase.objects.filter(customer_id=customer_id, state__in=[CaseState.OPEN, CaseState.PAUSED])
        .select_related("invoice", "policy_version__policy")
        .order_by(F("next_action_at").asc(nulls_last=True), "id")
    )
    messages = list(
        Notification.objects.filter(customer_id=customer_id, audience=Audience.CUSTOMER).order_by(
            "-created_at", "-id"
        )[:limit]
    )
    visits = list(
        CaseEvent.objects.filter(
            case__customer_id=customer_id, kind=CaseEventKind.PORTAL, details__action=PortalAction.VISIT.value
        ).order_by("-occurred_at", "-id")[:limit]
    )
    return CustomerDunning(open_cases=open_cases, messages=messages, portal_visits=visits)
