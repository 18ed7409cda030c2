"""Reads for the admin home: what needs staff today, revenue at risk, the last tick, recent staff actions.

Every figure links to the changelist filtered to exactly the rows it counts. The page costs a fixed number
of queries whatever the size of the tables (about a dozen), and each runs on an index where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.db.models import Count, F, Q, Sum
from django.urls import reverse
from django.utils import timezone

from config.models import TickRun
from customers.models import AuditEvent
from customers.money import format_money
from dunning.models import (
    AttemptStatus,
    CaseEvent,
    CaseState,
    CircuitState,
    DeclineCode,
    DoublePayment,
    DunningCase,
    GatewayCircuit,
    PaymentAttempt,
    StripeEvent,
    StripeEventStatus,
)
from dunning.services.double_payments import RESOLVABLE
from notifications.models import (
    Notification,
    NotificationStatus,
    StaffTask,
    StaffTaskStatus,
    WebhookEndpoint,
)

RECENT_DAYS = 7
RECENT_ACTIONS = 10
ACTIVE_STATES = (CaseState.OPEN, CaseState.PAUSED)


@dataclass(frozen=True)
class AttentionItem:
    key: str
    label: str
    count: int
    url: str
    help: str = ""

    @property
    def needs_attention(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class AtRisk:
    currency: str
    amount_minor: int
    cases: int
    url: str

    @property
    def amount(self) -> str:
        return format_money(self.amount_minor, self.currency)


@dataclass(frozen=True)
class LastTick:
    finished_at: datetime | None
    duration_seconds: float | None
    cases: int
    url: str
    late: bool  # no tick for three intervals: the scheduler may have stopped


@dataclass(frozen=True)
class RecentAction:
    at: datetime
    who: str
    what: str
    url: str


@dataclass(frozen=True)
class AdminHome:
    items: list[AttentionItem]
    at_risk: list[AtRisk]
    last_tick: LastTick | None
    recent: list[RecentAction]


def _url(viewname: str, **params: Any) -> str:
    url = reverse(viewname)
    return f"{url}?{urlencode(params)}" if params else url


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _case_items() -> list[AttentionItem]:
    cases = "admin:dunning_dunningcase_changelist"
    counts = DunningCase.objects.aggregate(
        review=Count("id", filter=Q(needs_staff_review=True)),
        handed_off=Count("id", filter=Q(state=CaseState.HANDED_OFF)),
    )
    return [
        AttentionItem(
            "review",
            "Cases flagged for staff review",
            counts["review"],
            _url(cases, queue="all", needs_staff_review__exact=1),
            "Fraud declines and double payments: check, then “Mark reviewed”.",
        ),
        AttentionItem(
            "handed_off",
            "Hand-offs waiting with collections",
            counts["handed_off"],
            _url(cases, state__exact=CaseState.HANDED_OFF),
        ),
    ]


def _money_safety_items() -> list[AttentionItem]:
    """Charges that moved money twice, and a gateway whose failures paused scheduled charging."""
    return [
        AttentionItem(
            "double_payments",
            "Double payments to refund",
            DoublePayment.objects.filter(status__in=RESOLVABLE).count(),
            _url("admin:dunning_doublepayment_changelist", todo="open"),
            "A charge succeeded on an invoice that was already paid: refund it in one click.",
        ),
        AttentionItem(
            "gateway_paused",
            "Gateways with charging paused",
            GatewayCircuit.objects.exclude(state=CircuitState.CLOSED).count(),
            _url("admin:dunning_gatewaycircuit_changelist", paused="yes"),
            "Too many charges got no answer: retries wait (not used up) until a probe succeeds.",
        ),
    ]


def _unknown_attempts_item() -> AttentionItem:
    return AttentionItem(
        "unknown_attempts",
        "Charges with an unknown outcome",
        PaymentAttempt.objects.filter(status=AttemptStatus.UNKNOWN).count(),
        _url("admin:dunning_paymentattempt_changelist", status__exact=AttemptStatus.UNKNOWN),
        "The gateway did not answer; the next tick asks it before anything else is charged.",
    )


def _notification_items(now: datetime) -> list[AttentionItem]:
    outbox = "admin:notifications_notification_changelist"
    since = now - timedelta(days=RECENT_DAYS)
    # One query each: the queued rows have their own partial index, the others (status, -created_at).
    backlog = Notification.objects.filter(status=NotificationStatus.QUEUED, send_after__lte=now).count()
    failed = Notification.objects.filter(status=NotificationStatus.FAILED, created_at__gte=since).count()
    bounced = Notification.objects.filter(status=NotificationStatus.BOUNCED, created_at__gte=since).count()
    return [
        AttentionItem(
            "outbox_backlog",
            "Emails due but not sent yet",
            backlog,
            _url(outbox, status__exact=NotificationStatus.QUEUED, send_after__lte=_iso(now)),
            "Queued and past their send time: the email dispatcher may be stopped or slow.",
        ),
        AttentionItem(
            "outbox_failed",
            f"Emails failed (last {RECENT_DAYS} days)",
            failed,
            _url(outbox, status__exact=NotificationStatus.FAILED, created_at__gte=_iso(since)),
        ),
        AttentionItem(
            "outbox_bounced",
            f"Emails bounced (last {RECENT_DAYS} days)",
            bounced,
            _url(outbox, status__exact=NotificationStatus.BOUNCED, created_at__gte=_iso(since)),
        ),
    ]


def _webhook_items() -> list[AttentionItem]:
    endpoints = "admin:notifications_webhookendpoint_changelist"
    counts = WebhookEndpoint.objects.aggregate(
        failing=Count("id", filter=Q(enabled=True, failing_since__isnull=False)),
        disabled=Count("id", filter=Q(enabled=False)),
    )
    return [
        AttentionItem(
            "webhooks_failing",
            "Webhook endpoints failing",
            counts["failing"],
            _url(endpoints, enabled__exact=1, failing_since__isnull="False"),
        ),
        AttentionItem(
            "webhooks_disabled",
            "Webhook endpoints disabled",
            counts["disabled"],
            _url(endpoints, enabled__exact=0),
            "Disabled after failing too long; enable them again once they answer.",
        ),
    ]


# Unpaid and still worked on, by the engine or by collections: the case queue's default view.
AT_RISK_STATES = (*ACTIVE_STATES, CaseState.HANDED_OFF)


def _at_risk() -> list[AtRisk]:
    rows = (
        DunningCase.objects.filter(state__in=AT_RISK_STATES)
        .values("currency")
        .annotate(
            amount=Sum(F("invoice__amount_due_minor") - F("invoice__amount_paid_minor")),
            cases=Count("id"),
        )
        .order_by("currency")
    )
    cases = "admin:dunning_dunningcase_changelist"
    return [
        AtRisk(
            row["currency"],
            int(row["amount"] or 0),
            row["cases"],
            _url(cases, currency__exact=row["currency"]),
        )
        for row in rows
    ]


def _last_tick(now: datetime) -> LastTick:
    run = TickRun.objects.order_by("-finished_at", "-id").first()
    url = reverse("admin:config_tickrun_changelist")
    if run is None:
        return LastTick(None, None, 0, url, late=True)
    late = now - run.finished_at > timedelta(minutes=3 * settings.DUNNING_TICK_MINUTES)
    return LastTick(run.finished_at, run.duration_seconds, run.cases, url, late)


def _recent_actions() -> list[RecentAction]:
    """What staff did lately: case actions, account changes, and admin edits (policies, templates)."""
    actions: list[RecentAction] = []
    for event in CaseEvent.objects.filter(actor_user__isnull=False).order_by("-occurred_at", "-id")[
        :RECENT_ACTIONS
    ]:
        what = event.get_kind_display()
        if event.to_state:
            what += f": {event.to_state.replace('_', ' ')}"
        actions.append(
            RecentAction(
                event.occurred_at,
                event.actor_label,
                f"Case {event.case_id} · {what}" + (f" · {event.reason[:80]}" if event.reason else ""),
                reverse("admin:dunning_dunningcase_change", args=[event.case_id]),
            )
        )
    for audit in AuditEvent.objects.filter(actor_user__isnull=False).order_by("-occurred_at", "-id")[
        :RECENT_ACTIONS
    ]:
        url = (
            reverse("admin:customers_customer_change", args=[audit.customer_id])
            if audit.customer_id
            else reverse("admin:customers_auditevent_change", args=[audit.pk])
        )
        actions.append(
            RecentAction(audit.occurred_at, audit.actor_label, audit.action.replace("_", " "), url)
        )
    for entry in LogEntry.objects.select_related("user", "content_type").order_by("-action_time", "-id")[
        :RECENT_ACTIONS
    ]:
        verb = "Added" if entry.is_addition() else "Changed" if entry.is_change() else "Deleted"
        kind = entry.content_type.name if entry.content_type else "object"
        actions.append(
            RecentAction(
                entry.action_time,
                entry.user.get_username(),
                f"{verb} {kind} “{entry.object_repr}”",
                "" if entry.is_deletion() else (entry.get_admin_url() or ""),
            )
        )
    actions.sort(key=lambda action: action.at, reverse=True)
    return actions[:RECENT_ACTIONS]


def admin_home(*, user: Any, now: datetime | None = None) -> AdminHome:
    """The home page's figures, only those the user may open (each is one or two queries)."""
    now = now or timezone.now()
    items: list[AttentionItem] = []
    if user.has_perm("dunning.view_dunningcase"):
        items += _case_items()
    if user.has_perm("notifications.view_stafftask"):
        items.append(
            AttentionItem(
                "staff_tasks",
                "Staff tasks open",
                StaffTask.objects.filter(status=StaffTaskStatus.OPEN).count(),
                _url("admin:notifications_stafftask_changelist", status__exact=StaffTaskStatus.OPEN),
                "Escalations and alerts waiting for a person.",
            )
        )
    if user.has_perm("dunning.view_declinecode"):
        items.append(
            AttentionItem(
                "unclassified_codes",
                "Unclassified decline codes seen",
                DeclineCode.objects.filter(is_classified=False).count(),
                _url("admin:dunning_declinecode_changelist", classified="no"),
                "Treated as soft until someone sets their category.",
            )
        )
    if user.has_perm("dunning.view_paymentattempt"):
        items.append(_unknown_attempts_item())
    if user.has_perm("dunning.view_doublepayment"):
        items += _money_safety_items()
    if user.has_perm("dunning.view_stripeevent"):
        items.append(
            AttentionItem(
                "stripe_failed",
                "Stripe events that failed",
                StripeEvent.objects.filter(status=StripeEventStatus.FAILED).count(),
                _url("admin:dunning_stripeevent_changelist", status__exact=StripeEventStatus.FAILED),
            )
        )
    if user.has_perm("notifications.view_webhookendpoint"):
        items += _webhook_items()
    if user.has_perm("notifications.view_notification"):
        items += _notification_items(now)
    at_risk = _at_risk() if user.has_perm("dunning.view_dunningcase") else []
    last_tick = _last_tick(now) if user.has_perm("config.view_tickrun") else None
    recent = _recent_actions() if user.is_superuser or user.has_perm("customers.view_auditevent") else []
    return AdminHome(items=items, at_risk=at_risk, last_tick=last_tick, recent=recent)
