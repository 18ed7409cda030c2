"""Reads of the notifications app, for its own views and for the dunning and reporting layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, Q, QuerySet

from customers.models import FINAL_INVOICE_STATUSES
from notifications.models import (
    Audience,
    Banner,
    Notification,
    NotificationStatus,
    StaffTask,
    StaffTaskStatus,
)

# Rows that reached the provider (a bounce still went out).
WENT_OUT_STATUSES = (NotificationStatus.SENT, NotificationStatus.BOUNCED)


def messages_sent_by_case(*, case_refs: Sequence[int]) -> dict[int, int]:
    """Customer messages that went out per case: distinct messages, not recipients (one GROUP BY)."""
    if not case_refs:
        return {}
    rows = (
        Notification.objects.filter(
            case_ref__in=list(case_refs), audience=Audience.CUSTOMER, status__in=WENT_OUT_STATUSES
        )
        .values("case_ref")
        .annotate(messages=Count("message_key", distinct=True))
        .order_by()
    )
    return {row["case_ref"]: row["messages"] for row in rows}


def notification_counts_by_case(*, case_refs: Sequence[int]) -> dict[int, dict[str, int]]:
    """Rows per status per case, e.g. ``{12: {"sent": 3, "skipped": 1}}``."""
    if not case_refs:
        return {}
    result: dict[int, dict[str, int]] = {}
    rows = (
        Notification.objects.filter(case_ref__in=list(case_refs))
        .values("case_ref", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        result.setdefault(row["case_ref"], {})[row["status"]] = row["n"]
    return result


def notifications_for_case(*, case_ref: int) -> QuerySet[Notification]:
    """The messages of one case, newest first (for the case timeline in the admin)."""
    return Notification.objects.filter(case_ref=case_ref).order_by("-created_at", "-id")


def active_banners_for_customer(*, external_id: str) -> list[dict[str, Any]]:
    """The active banners of a customer, as plain values for the API; one query, joined on the customer.

    A banner whose invoice is already paid, void or uncollectible is left out even before dunning clears
    it: nothing shows after payment.
    """
    rows = (
        Banner.objects.filter(customer__external_id=external_id, active=True)
        .filter(Q(invoice__isnull=True) | ~Q(invoice__status__in=list(FINAL_INVOICE_STATUSES)))
        .order_by("-updated_at", "-id")
        .values("id", "message", "severity", "cta_url", "cta_label", "updated_at")
    )
    return list(rows)


def active_banners_by_case(*, case_refs: Sequence[int]) -> QuerySet[Banner]:
    return Banner.objects.filter(case_ref__in=list(case_refs), active=True)


def open_staff_tasks(*, customer_id: int | None = None) -> QuerySet[StaffTask]:
    tasks = StaffTask.objects.filter(status=StaffTaskStatus.OPEN)
    if customer_id is not None:
        tasks = tasks.filter(customer_id=customer_id)
    return tasks.order_by("-created_at")
