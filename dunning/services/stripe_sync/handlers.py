"""One handler per Stripe event type, in an explicit dict. Handlers are thin: they read ids from the
payload (a hint, never the truth about money) and call one service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from customers.actors import Actor
from dunning.gateways.stripe import StripeGateway
from dunning.gateways.stripe_objects import timestamp
from dunning.models import StripeEvent
from dunning.services.stripe_sync.common import Outcome, ignored
from dunning.services.stripe_sync.invoices import stripe_invoice_payment_failed, stripe_invoice_settled
from dunning.services.stripe_sync.methods import (
    stripe_card_expiring,
    stripe_customer_default_changed,
    stripe_invoice_upcoming,
    stripe_payment_method_changed,
)


@dataclass(frozen=True)
class IncomingEvent:
    id: str
    type: str
    created: datetime | None
    object: Mapping[str, Any]
    previous: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: StripeEvent) -> IncomingEvent:
        data = row.payload.get("data") or {}
        return cls(
            id=row.event_id,
            type=row.type,
            created=row.stripe_created_at or timestamp(row.payload.get("created")),
            object=data.get("object") or {},
            previous=data.get("previous_attributes") or {},
        )

    def object_id(self) -> str:
        value = self.object.get("id")
        if not value:
            raise ValueError(f"the {self.type} event carries no object id")
        return str(value)


Handler = Callable[[IncomingEvent, StripeGateway, Actor], Outcome]


def on_invoice_payment_failed(event: IncomingEvent, gateway: StripeGateway, actor: Actor) -> Outcome:
    return stripe_invoice_payment_failed(
        gateway=gateway, invoice_id=event.object_id(), actor=actor, failed_at=event.created
    )


def on_invoice_action_required(event: IncomingEvent, gateway: StripeGateway, actor: Actor) -> Outcome:
    return stripe_invoice_payment_failed(
        gateway=gateway,
        invoice_id=event.object_id(),
        actor=actor,
        failed_at=event.created,
        authentication=True,
    )


def on_invoice_settled(event: IncomingEvent, gateway: StripeGateway, actor: Actor) -> Outcome:
    return stripe_invoice_settled(gateway=gateway, invoice_id=event.object_id(), actor=actor)


def on_payment_method(event: IncomingEvent, gateway: StripeGateway, actor: Actor) -> Outcome:
    return stripe_payment_method_changed(gateway=gateway, payment_method_id=event.object_id(), actor=actor)


def on_customer_updated(event: IncomingEvent, gateway: StripeGateway, actor: Actor) -> Outcome:
    previous_settings = event.previous.get("invoice_settings") or {}
    if "default_payment_method" not in previous_settings and "default_source" not in event.previous:
        return ignored("the default payment method did not change")
    return stripe_customer_default_changed(gateway=gateway, customer_ref=event.object_id(), actor=actor)


def on_source_expiring(event: IncomingEvent, gateway: StripeGateway, actor: Actor) -> Outcome:
    return stripe_card_expiring(gateway=gateway, card=event.object, actor=actor, now=timezone.now())


def on_invoice_upcoming(event: IncomingEvent, gateway: StripeGateway, actor: Actor) -> Outcome:
    return stripe_invoice_upcoming(gateway=gateway, invoice=event.object, actor=actor, now=timezone.now())


HANDLERS: dict[str, Handler] = {
    "invoice.payment_failed": on_invoice_payment_failed,
    "invoice.payment_action_required": on_invoice_action_required,
    "invoice.paid": on_invoice_settled,
    "invoice.payment_succeeded": on_invoice_settled,
    "invoice.voided": on_invoice_settled,
    "invoice.marked_uncollectible": on_invoice_settled,
    "payment_method.attached": on_payment_method,
    "payment_method.updated": on_payment_method,
    "payment_method.automatically_updated": on_payment_method,
    "customer.updated": on_customer_updated,
    "customer.source.expiring": on_source_expiring,
    "invoice.upcoming": on_invoice_upcoming,
}
# The events to enable on the Stripe webhook endpoint (README), and what reconciliation lists.
HANDLED_EVENT_TYPES: tuple[str, ...] = tuple(HANDLERS)
