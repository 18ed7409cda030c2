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


@dataclass(frozen=True)
class MessageIntent:
    customer_id: int
    case_id: int
    step_ref: str
    template_key: str
    invoice_id: int | None
    context: Mapping[str, Any] = field(default_factory=dict)
    bypass_cap: bool = False


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


def send_messages(*, intents: Sequence[MessageIntent], now: datetime) -> int:
    """Queue emails in the outbox. Until the notifications app is wired in, nothing is queued."""
    return 0


def show_banners(*, intents: Sequence[BannerIntent]) -> int:
    return 0


def withdraw_for_cases(*, case_ids: Sequence[int], reason: str) -> None:
    """A case closed: cancel its queued messages and clear its banners, in the caller's transaction."""


def emit_webhooks(*, events: Sequence[OutboundEvent]) -> int:
    return 0


def escalate(*, escalations: Sequence[StaffEscalation]) -> int:
    return 0
