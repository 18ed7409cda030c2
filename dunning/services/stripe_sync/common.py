"""What every Stripe sync service shares: outcomes, deferral, and the gateway to re-fetch objects with."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from dunning.gateways import get_gateway
from dunning.gateways.stripe import StripeGateway
from dunning.models import IN_FLIGHT_STATUSES, PaymentAttempt, StripeEventStatus

STRIPE = "stripe"


@dataclass(frozen=True)
class Outcome:
    """What handling an event did: processed (something changed or was checked) or ignored, and why."""

    status: str
    note: str


def processed(note: str) -> Outcome:
    return Outcome(StripeEventStatus.PROCESSED, note[:500])


def ignored(note: str) -> Outcome:
    return Outcome(StripeEventStatus.IGNORED, note[:500])


class EventDeferred(Exception):
    """The event cannot be handled yet (our own charge of the invoice is in flight, Stripe is unreachable):
    it stays ``received`` and the periodic sweep handles it again."""


def stripe_gateway() -> StripeGateway:
    """The configured gateway if it is Stripe's, else one built from the Stripe settings: Stripe's events
    are read from Stripe whatever charges the other invoices."""
    gateway = get_gateway()
    if isinstance(gateway, StripeGateway):
        return gateway
    gateway.close()
    return StripeGateway()


def in_flight_attempts(invoice_id: int) -> QuerySet[PaymentAttempt]:
    return PaymentAttempt.objects.filter(invoice_id=invoice_id, status__in=IN_FLIGHT_STATUSES)


def defer_while_charging(invoice_id: int) -> None:
    if in_flight_attempts(invoice_id).exists():
        raise EventDeferred("a charge of this invoice is in flight; its result comes first")
