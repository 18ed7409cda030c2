"""The dunning app's part of privacy: erasing its rows about a customer, exporting them, and purging
Stripe event payloads past their retention.

- Erasure (``customers.signals.customer_erasing``): portal visits are deleted from the case timelines (they
  record only that the customer looked); every other timeline row, attempt and case stays, with personal
  values erased from its text. Stored Stripe events about the customer lose their personal fields (names,
  emails, phones, addresses, billing details). The customer's portal links stop working.
- Retention: Stripe event payloads older than ``WEBHOOK_PAYLOAD_RETENTION_DAYS`` are cut down to the ids
  (the row stays: it is what keeps a redelivered event from running twice).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from customers.models import Customer
from customers.privacy import Erasure, rows_of
from dunning.models import (
    INITIAL_TOKEN_VERSION,
    CaseEvent,
    CaseEventKind,
    DunningCase,
    PaymentAttempt,
    PortalAccess,
    StripeEvent,
    StripeEventStatus,
)

# Fields of Stripe objects that hold a person's data (customers, invoices, charges, payment methods).
STRIPE_PERSONAL_KEYS = frozenset(
    {
        "name",
        "email",
        "phone",
        "address",
        "shipping",
        "billing_details",
        "customer_name",
        "customer_email",
        "customer_phone",
        "customer_address",
        "customer_shipping",
        "receipt_email",
        "account_holder_name",
    }
)
PURGE_CHUNK = 500
FINISHED_EVENT_STATUSES = (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED, StripeEventStatus.FAILED)


def _without_personal_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: None if key in STRIPE_PERSONAL_KEYS and item else _without_personal_fields(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_personal_fields(item) for item in value]
    return value


def _stripe_events_about(*, gateway_customer_id: str, emails: tuple[str, ...]) -> QuerySet[StripeEvent]:
    """Events whose payload holds the customer's Stripe id or one of their addresses as a whole JSON
    string (quotes included, so ``cus_1`` never matches ``cus_12``). One scan of the inbox."""
    searched = [v for v in (gateway_customer_id, *emails) if v]
    if not searched:
        return StripeEvent.objects.none()
    condition = Q(pk__in=[])
    for value in searched:
        condition |= Q(payload_text__icontains=json.dumps(value))
    return StripeEvent.objects.annotate(payload_text=Cast("payload", TextField())).filter(condition)


def dunning_erase_customer(*, erasure: Erasure) -> dict[str, int]:
    """Anonymise this app's rows about one customer; returns rows changed per table."""
    case_ids = list(DunningCase.objects.filter(customer_id=erasure.customer_id).values_list("pk", flat=True))
    events = CaseEvent.objects.filter(case_id__in=case_ids)
    visits = events.filter(kind=CaseEventKind.PORTAL, details__action="visit").delete()[0]
    stripe_events = _stripe_events_about(
        gateway_customer_id=erasure.gateway_customer_id, emails=erasure.emails
    )
    changed = []
    for row in stripe_events.values("pk", "payload", "result", "error").iterator(chunk_size=500):
        cleaned = {
            "payload": erasure.scrub(_without_personal_fields(row["payload"])),
            "result": erasure.scrub_text(row["result"]),
            "error": erasure.scrub_text(row["error"]),
        }
        if any(cleaned[name] != row[name] for name in cleaned):
            changed.append(StripeEvent(pk=row["pk"], **cleaned))
    StripeEvent.objects.bulk_update(changed, ["payload", "result", "error"], batch_size=PURGE_CHUNK)
    # Every link sent so far stops working: they open a page about an anonymous account.
    access, _ = PortalAccess.objects.get_or_create(
        customer_id=erasure.customer_id, defaults={"token_version": INITIAL_TOKEN_VERSION}
    )
    PortalAccess.objects.filter(pk=access.pk).update(
        token_version=access.token_version + 1, revoked_at=timezone.now(), revoked_by_label="erasure"
    )
    return {
        "dunning.caseevent.portal_visits_deleted": visits,
        "dunning.caseevent": erasure.scrub_rows(events, ["reason", "details"]),
        "dunning.paymentattempt": erasure.scrub_rows(
            PaymentAttempt.objects.filter(invoice__customer_id=erasure.customer_id), ["message"]
        ),
        "dunning.stripeevent": len(changed),
        "dunning.portalaccess": 1,
    }


def dunning_customer_data(*, customer: Customer) -> dict[str, list[dict[str, Any]]]:
    cases = DunningCase.objects.filter(customer=customer)
    emails = tuple(e for e in {customer.email, *customer.contacts.values_list("email", flat=True)} if e)
    return {
        "dunning_cases": rows_of(cases.order_by("pk"), exclude=("claim_token",)),
        "case_events": rows_of(CaseEvent.objects.filter(case__in=cases).order_by("pk")),
        "payment_attempts": rows_of(PaymentAttempt.objects.filter(invoice__customer=customer).order_by("pk")),
        "portal_access": rows_of(PortalAccess.objects.filter(customer=customer)),
        "stripe_events": rows_of(
            _stripe_events_about(gateway_customer_id=customer.gateway_customer_id, emails=emails).order_by(
                "pk"
            ),
            exclude=("locked_until",),
        ),
    }


def stripe_payloads_purge(*, now: datetime | None = None) -> int:
    """Cut finished Stripe events older than ``WEBHOOK_PAYLOAD_RETENTION_DAYS`` down to their ids."""
    days: int = settings.WEBHOOK_PAYLOAD_RETENTION_DAYS
    if days <= 0:
        return 0
    now = now or timezone.now()
    expired = StripeEvent.objects.filter(
        received_at__lt=now - timedelta(days=days), status__in=FINISHED_EVENT_STATUSES
    ).exclude(payload__has_key="purged_at")
    total = 0
    while True:
        rows = list(
            expired.values(
                "pk",
                "event_id",
                "type",
                "livemode",
                "payload__data__object__id",
                "payload__data__object__object",
            )[:PURGE_CHUNK]
        )
        if not rows:
            return total
        purged = []
        for row in rows:
            obj = {"id": row["payload__data__object__id"], "object": row["payload__data__object__object"]}
            payload = {
                "id": row["event_id"],
                "type": row["type"],
                "livemode": row["livemode"],
                "data": {"object": {k: v for k, v in obj.items() if v is not None}},
                "purged_at": now.isoformat(),
            }
            purged.append(StripeEvent(pk=row["pk"], payload=payload))
        StripeEvent.objects.bulk_update(purged, ["payload"])
        total += len(purged)
