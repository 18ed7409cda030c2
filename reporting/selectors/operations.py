"""What on-call engineers watch, read from the database at scrape time (so every web process answers the
same): backlogs, lags and failures from the live tables through their indexes, and the tick counters that
every tick adds to ``OperationsFigure``. About ten indexed queries whatever the size of the tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.db.models import Count, Min
from django.utils import timezone

from dunning.models import (
    AttemptStatus,
    CaseState,
    CircuitState,
    DoublePayment,
    DoublePaymentStatus,
    DunningCase,
    GatewayCircuit,
    PaymentAttempt,
    StripeEvent,
    StripeEventStatus,
)
from notifications.models import (
    DeliveryStatus,
    Notification,
    NotificationStatus,
    StaffTask,
    StaffTaskStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from reporting.models import OperationsFigure

RECENT = timedelta(hours=24)


@dataclass(frozen=True)
class Metric:
    """One metric family. A summary's samples are its counts, with its sum in ``summary_sum``."""

    name: str
    kind: Literal["gauge", "counter", "summary"]
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)
    summary_sum: float = 0.0


def _age(now: datetime, moment: datetime | None) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment is not None else 0.0


def stored_figures() -> dict[str, float]:
    return dict(OperationsFigure.objects.values_list("name", "value"))


def last_tick_finished_at(figures: dict[str, float] | None = None) -> datetime | None:
    figures = stored_figures() if figures is None else figures
    stamp = figures.get("last_tick_finished_at")
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp else None


def _tick_metrics(figures: dict[str, float]) -> list[Metric]:
    def by_prefix(prefix: str, label: str) -> list[tuple[dict[str, str], float]]:
        found = sorted(
            (name.removeprefix(prefix), value) for name, value in figures.items() if name.startswith(prefix)
        )
        return [({label: key}, value) for key, value in found]

    return [
        Metric("dunning_ticks", "counter", "Dunning ticks that finished.", [({}, figures.get("ticks", 0))]),
        Metric(
            "dunning_tick_cases",
            "counter",
            "Due cases processed by ticks.",
            [({}, figures.get("tick_cases", 0))],
        ),
        Metric(
            "dunning_tick_actions",
            "counter",
            "What ticks did, by kind (the run_dunning summary lines: email, retry, retry.failed, recovered…).",
            by_prefix("tick_actions:", "kind"),
        ),
        Metric(
            "dunning_gateway_errors",
            "counter",
            "Charges the gateway gave no answer to (no_answer: timeout, 5xx, connection; the attempt stays "
            "unknown until reconciled) and truth queries that failed (truth_query_failed), from ticks.",
            by_prefix("gateway_errors:", "kind"),
        ),
        Metric(
            "dunning_tick_duration_seconds",
            "summary",
            "Time spent in timed ticks (the scheduled task and run_dunning).",
            [({}, figures.get("timed_ticks", 0))],
            summary_sum=figures.get("tick_seconds", 0),
        ),
        Metric(
            "dunning_last_tick_timestamp_seconds",
            "gauge",
            "When the last tick finished (Unix time); 0 before the first.",
            [({}, figures.get("last_tick_finished_at", 0))],
        ),
        Metric(
            "dunning_last_tick_duration_seconds",
            "gauge",
            "How long the last timed tick ran.",
            [({}, figures.get("last_tick_duration_seconds", 0))],
        ),
        Metric(
            "dunning_last_tick_cases",
            "gauge",
            "Due cases the last tick processed.",
            [({}, figures.get("last_tick_cases", 0))],
        ),
    ]


UNRESOLVED_DOUBLE_PAYMENTS = (DoublePaymentStatus.OPEN, DoublePaymentStatus.REFUND_FAILED)


def operations_metrics(*, now: datetime | None = None) -> list[Metric]:
    now = now or timezone.now()
    figures = stored_figures()
    due = DunningCase.objects.filter(state=CaseState.OPEN, next_action_at__lte=now).aggregate(
        n=Count("id"), oldest=Min("next_action_at")
    )
    double_payments = DoublePayment.objects.filter(status__in=UNRESOLVED_DOUBLE_PAYMENTS).count()
    paused_gateways = GatewayCircuit.objects.exclude(state=CircuitState.CLOSED).count()
    unknown = PaymentAttempt.objects.filter(status=AttemptStatus.UNKNOWN).count()
    outbox = Notification.objects.filter(status=NotificationStatus.QUEUED, send_after__lte=now).aggregate(
        n=Count("id"), oldest=Min("send_after")
    )
    failed_messages = Notification.objects.filter(
        status=NotificationStatus.FAILED, created_at__gte=now - RECENT
    ).count()
    deliveries = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).aggregate(n=Count("id"), oldest=Min("next_attempt_at"))
    failed_deliveries = WebhookDelivery.objects.filter(
        created_at__gte=now - RECENT, status=DeliveryStatus.FAILED
    ).count()
    disabled_endpoints = WebhookEndpoint.objects.filter(enabled=False).count()
    inbox = StripeEvent.objects.filter(status=StripeEventStatus.RECEIVED).aggregate(
        n=Count("id"), oldest=Min("received_at")
    )
    inbox_failed = StripeEvent.objects.filter(status=StripeEventStatus.FAILED).count()
    open_tasks = StaffTask.objects.filter(status=StaffTaskStatus.OPEN).count()

    def gauge(name: str, help_text: str, value: float) -> Metric:
        return Metric(name, "gauge", help_text, [({}, float(value))])

    return [
        *_tick_metrics(figures),
        gauge("dunning_due_cases", "Open cases whose next step is due now (the tick's backlog).", due["n"]),
        gauge(
            "dunning_due_oldest_age_seconds",
            "How late the most overdue case's next step is (0 when nothing is due).",
            _age(now, due["oldest"]),
        ),
        gauge(
            "dunning_attempts_unknown",
            "Charges whose outcome the gateway never gave, waiting to be reconciled.",
            unknown,
        ),
        gauge(
            "dunning_double_payments_open",
            "Charges that moved money for an invoice already paid or closed, not yet refunded or dismissed.",
            double_payments,
        ),
        gauge(
            "dunning_gateway_circuits_open",
            "Gateways whose circuit breaker paused scheduled charging after too many failed calls.",
            paused_gateways,
        ),
        gauge("notifications_outbox_due", "Emails queued and due to be sent now.", outbox["n"]),
        gauge(
            "notifications_outbox_oldest_due_age_seconds",
            "How late the oldest due email is (0 when none is due).",
            _age(now, outbox["oldest"]),
        ),
        gauge(
            "notifications_outbox_failed_recent",
            "Emails created in the last 24 hours that failed (refused, gave up, did not render).",
            failed_messages,
        ),
        gauge(
            "notifications_webhook_deliveries_due", "Outgoing webhook deliveries due now.", deliveries["n"]
        ),
        gauge(
            "notifications_webhook_deliveries_oldest_due_age_seconds",
            "How late the oldest due outgoing webhook delivery is.",
            _age(now, deliveries["oldest"]),
        ),
        gauge(
            "notifications_webhook_deliveries_failed_recent",
            "Outgoing webhook deliveries created in the last 24 hours that gave up.",
            failed_deliveries,
        ),
        gauge(
            "notifications_webhook_endpoints_disabled",
            "Outgoing webhook endpoints disabled.",
            disabled_endpoints,
        ),
        gauge("dunning_stripe_inbox_pending", "Stripe events received and not processed yet.", inbox["n"]),
        gauge(
            "dunning_stripe_inbox_lag_seconds",
            "Age of the oldest Stripe event still waiting to be processed (0 when none).",
            _age(now, inbox["oldest"]),
        ),
        gauge("dunning_stripe_inbox_failed", "Stripe events whose processing failed.", inbox_failed),
        gauge("notifications_staff_tasks_open", "Staff tasks still open.", open_tasks),
    ]
