"""The boundary between the dunning engine and the notifications app.

Dunning decides *what* to tell whom and when; notifications owns templates, outbox, banners, webhooks and
staff tasks. Every function here is set-based (one call per batch) and runs inside the caller's
transaction, so a message exists exactly when the step that wants it is committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils.translation import gettext_lazy as _

from notifications.services import (
    BannerRequest,
    MessageRequest,
    WebhookEvent,
    banners_clear,
    banners_show,
    notifications_cancel_for_cases,
    notifications_enqueue,
    staff_task_create,
    webhooks_emit,
)


@dataclass(frozen=True)
class MessageIntent:
    customer_id: int
    # None for messages outside any case (pre-dunning reminders): unique per customer and step instead.
    case_id: int | None
    step_ref: str
    template_key: str
    invoice_id: int | None
    context: Mapping[str, Any] = field(default_factory=dict)
    bypass_cap: bool = False
    # Reminders stop once the invoice is paid; the recovered confirmation is sent because it was.
    only_while_unpaid: bool = True
    # The customer is acting right now (paying in the portal): the message goes at once, quiet hours or not.
    customer_requested: bool = False


@dataclass(frozen=True)
class BannerIntent:
    customer_id: int
    case_id: int
    invoice_id: int | None
    template_key: str
    severity: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundEvent:
    event_type: str
    event_id: str
    payload: Mapping[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class StaffEscalation:
    customer_id: int
    case_id: int
    invoice_id: int | None
    title: str
    details: str


BANNER_TEXT = {
    "banner_payment_failed": _(
        "We couldn't process your payment of %(amount)s. Update your payment method to keep your account active."
    ),
    "banner_final_notice": _(
        "Final notice: %(amount)s is still unpaid. Update your payment method before %(date)s to avoid interruption."
    ),
}
DEFAULT_BANNER_TEXT = _(
    "Your payment of %(amount)s is overdue. Update your payment method to keep your account active."
)


def send_messages(*, intents: Sequence[MessageIntent], now: datetime) -> int:
    """Queue emails in the outbox (one statement set for the whole batch); they leave after commit."""
    if not intents:
        return 0
    created = notifications_enqueue(
        requests=[
            MessageRequest(
                customer_id=intent.customer_id,
                template_key=intent.template_key,
                case_ref=intent.case_id,
                step_ref=intent.step_ref,
                invoice_id=intent.invoice_id,
                context=intent.context,
                bypass_cap=intent.bypass_cap,
                only_while_unpaid=intent.only_while_unpaid,
                customer_requested=intent.customer_requested,
            )
            for intent in intents
        ],
        now=now,
    )
    return len(created)


def banner_text(intent: BannerIntent) -> str:
    """The banner's words. Banners are short and fixed per key; the amount and date come from the case."""
    context = intent.context
    affected = context.get("access_affected_on")
    text = BANNER_TEXT.get(intent.template_key, DEFAULT_BANNER_TEXT)
    return str(text) % {
        "amount": context.get("amount", ""),
        "date": affected.strftime("%d %B %Y") if affected else _("the end of the grace period"),
    }


def show_banners(*, intents: Sequence[BannerIntent]) -> int:
    if not intents:
        return 0
    return banners_show(
        requests=[
            BannerRequest(
                customer_id=intent.customer_id,
                case_ref=intent.case_id,
                invoice_id=intent.invoice_id,
                message=banner_text(intent),
                severity=intent.severity,
                cta_url=str(intent.context.get("portal_url", "")),
            )
            for intent in intents
        ]
    )


def withdraw_for_cases(*, case_ids: Sequence[int], reason: str) -> None:
    """A case closed: cancel its queued messages and clear its banners, in the caller's transaction."""
    if case_ids:
        notifications_cancel_for_cases(case_refs=case_ids, reason=reason)
        banners_clear(case_refs=case_ids)


def emit_webhooks(*, events: Sequence[OutboundEvent]) -> int:
    if not events:
        return 0
    return webhooks_emit(
        events=[
            WebhookEvent(
                event_type=event.event_type,
                event_id=event.event_id,
                payload=event.payload,
                occurred_at=event.occurred_at,
            )
            for event in events
        ]
    )


def escalate_operations(*, title: str, details: str) -> None:
    """A staff task about the system itself (no customer): one open task per title."""
    staff_task_create(customer_id=None, case_ref=None, title=title, details=details)


def escalate(*, escalations: Sequence[StaffEscalation]) -> int:
    """A staff task per escalation (visible in the admin), emailed to the staff group."""
    for escalation in escalations:
        staff_task_create(
            customer_id=escalation.customer_id,
            case_ref=escalation.case_id,
            invoice_id=escalation.invoice_id,
            title=escalation.title,
            details=escalation.details,
        )
    return len(escalations)
