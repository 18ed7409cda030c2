"""The Stripe webhook inbox: receive (verify, store once), process after commit, sweep, replay.

Receiving is two statements inside one transaction (an INSERT that does nothing for a duplicate event
id, and the commit), so Stripe gets its answer fast. Processing runs after commit in a django-q2 task: a
worker leases the row, runs the event type's handler and records the status (processed, ignored, failed)
with what happened or the error. An event that must wait (our own charge of the invoice is in flight,
Stripe unreachable) stays ``received`` and the periodic sweep picks it up again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from customers.actors import Actor
from customers.bulk import insert_rows
from customers.services import audit_record
from customers.validators import json_text_problem
from dunning.gateways import GatewayError
from dunning.gateways.stripe import StripeGateway, WebhookSignatureInvalid, verify_webhook
from dunning.gateways.stripe_objects import timestamp
from dunning.models import StripeEvent, StripeEventSource, StripeEventStatus
from dunning.services.stripe_sync.common import EventDeferred, Outcome, ignored, stripe_gateway
from dunning.services.stripe_sync.handlers import HANDLERS, IncomingEvent

logger = logging.getLogger(__name__)

# A worker holds an event this long at most (handlers may charge a few invoices).
LEASE = timedelta(minutes=10)
# Events still "received" after this long are picked up by the sweep (their task was lost or deferred).
SWEEP_AFTER = timedelta(minutes=5)
# An event deferred this many times is marked failed, for a person to look at.
MAX_ATTEMPTS = 20
PROCESS_TASK = "dunning.tasks.process_stripe_event"

COLUMNS = (
    "event_id",
    "type",
    "livemode",
    "api_version",
    "stripe_created_at",
    "payload",
    "source",
    "status",
    "result",
    "error",
    "attempts",
    "received_at",
    "processed_at",
    "locked_until",
)


class WebhookPayloadInvalid(ValueError):
    """Correctly signed, but not a Stripe event. Stored as failed, so it is never lost."""


@dataclass(frozen=True)
class Stored:
    pk: int | None
    duplicate: bool


def _enqueue(pk: int) -> None:
    from django_q.tasks import async_task

    async_task(PROCESS_TASK, pk)


def stripe_event_store(
    *, event: Mapping[str, Any], source: str = StripeEventSource.WEBHOOK, process: bool = True
) -> Stored:
    """Store an event once (unique on its id) and, when it is new, process it after commit."""
    now = timezone.now()
    row = (
        str(event["id"])[:255],
        str(event["type"])[:100],
        bool(event.get("livemode")),
        str(event.get("api_version") or "")[:40],
        timestamp(event.get("created")),
        dict(event),
        source,
        StripeEventStatus.RECEIVED,
        "",
        "",
        0,
        now,
        None,
        None,
    )
    with transaction.atomic():
        inserted = insert_rows(StripeEvent, COLUMNS, [row], on_conflict_do_nothing=True, returning=("id",))
        if inserted and process:
            pk = int(inserted[0][0])
            transaction.on_commit(lambda: _enqueue(pk))
    return Stored(pk=int(inserted[0][0]) if inserted else None, duplicate=not inserted)


def _store_invalid(payload: bytes, error: str) -> None:
    digest = hashlib.sha256(payload).hexdigest()
    StripeEvent.objects.get_or_create(
        event_id=f"invalid:{digest[:40]}",
        defaults={
            "type": "",
            "payload": {"raw": payload.decode("utf-8", errors="replace")[:100_000]},
            "status": StripeEventStatus.FAILED,
            "error": f"not a Stripe event: {error}",
        },
    )


def stripe_event_receive(*, payload: bytes, signature: str) -> Stored:
    """The webhook: verify the signature with the SDK (any configured secret, within the tolerance), then
    store. Raises :class:`WebhookSignatureInvalid` (nothing stored) or :class:`WebhookPayloadInvalid`."""
    try:
        event = verify_webhook(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
    except WebhookSignatureInvalid:
        raise
    except ValueError as exc:
        _store_invalid(payload, str(exc))
        raise WebhookPayloadInvalid(str(exc)) from exc
    problem = _event_problem(event)
    if problem:
        _store_invalid(payload, problem)
        raise WebhookPayloadInvalid(problem)
    return stripe_event_store(event=event)


# Stripe's timestamps: seconds since 1970, before the year 3000.
MAX_TIMESTAMP = 32_503_680_000


def _event_problem(event: Mapping[str, Any]) -> str | None:
    """Why a correctly signed event cannot be stored as it is (types and bytes), or None."""
    if not isinstance(event["id"], str) or not isinstance(event["type"], str):
        return "the event's id and type must be strings"
    created = event.get("created")
    if created is not None and (
        isinstance(created, bool) or not isinstance(created, int) or not 0 <= created < MAX_TIMESTAMP
    ):
        return "the event's created time must be a Unix timestamp"
    if not isinstance(event.get("api_version") or "", str):
        return "the event's api_version must be a string"
    problem = json_text_problem(event)
    return f"the event {problem}" if problem else None


def _claim(pk: int, *, now: datetime, force: bool) -> bool:
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    rows = StripeEvent.objects.filter(free, pk=pk)
    if not force:
        rows = rows.filter(status=StripeEventStatus.RECEIVED)
    return bool(rows.update(attempts=F("attempts") + 1, locked_until=now + LEASE))


def _finish(pk: int, *, status: str, result: str = "", error: str = "") -> None:
    StripeEvent.objects.filter(pk=pk).update(
        status=status,
        result=result[:500],
        error=error[:4000],
        processed_at=None if status == StripeEventStatus.RECEIVED else timezone.now(),
        locked_until=None,
    )


def _handle(row: StripeEvent, actor: Actor) -> Outcome:
    handler = HANDLERS.get(row.type)
    if handler is None:
        return ignored(f"no handler for {row.type or 'this event'}: stored only")
    gateway: StripeGateway = stripe_gateway()
    try:
        if row.livemode != gateway.livemode:
            mode = "live" if row.livemode else "test"
            return ignored(f"a {mode}-mode event, but STRIPE_SECRET_KEY is for the other mode")
        return handler(IncomingEvent.from_row(row), gateway, actor)
    finally:
        gateway.close()


def stripe_event_process(*, pk: int, force: bool = False, actor: Actor | None = None) -> str | None:
    """Process one stored event; returns its new status, or None if another worker holds it (or, without
    ``force``, it was already processed). ``force`` re-runs a processed, failed or ignored event."""
    if not _claim(pk, now=timezone.now(), force=force):
        return None
    row = StripeEvent.objects.get(pk=pk)
    actor = actor or Actor.webhook(f"stripe {row.type} {row.event_id}")
    try:
        outcome = _handle(row, actor)
    except (EventDeferred, GatewayError) as exc:
        if isinstance(exc, GatewayError) and not exc.retryable:
            _finish(pk, status=StripeEventStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            return StripeEventStatus.FAILED
        if row.attempts >= MAX_ATTEMPTS:  # counted by the claim
            _finish(pk, status=StripeEventStatus.FAILED, error=f"gave up after {MAX_ATTEMPTS} tries: {exc}")
            return StripeEventStatus.FAILED
        _finish(pk, status=StripeEventStatus.RECEIVED, error=f"deferred: {exc}")
        return StripeEventStatus.RECEIVED
    except Exception as exc:  # noqa: BLE001 - any handler error is recorded on the row, never lost
        logger.exception("Stripe event %s (%s) failed", row.event_id, row.type)
        _finish(pk, status=StripeEventStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return StripeEventStatus.FAILED
    _finish(pk, status=outcome.status, result=outcome.note)
    return outcome.status


def stripe_events_sweep(*, now: datetime | None = None, limit: int = 500) -> Counter[str]:
    """Process events still ``received`` after a few minutes, oldest first (lost tasks, deferrals)."""
    now = now or timezone.now()
    pending = (
        StripeEvent.objects.filter(status=StripeEventStatus.RECEIVED, received_at__lt=now - SWEEP_AFTER)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("stripe_created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    counts: Counter[str] = Counter()
    for pk in list(pending):
        counts[stripe_event_process(pk=pk) or "busy"] += 1
    return counts


def stripe_events_replay(*, pks: Iterable[int], actor: Actor) -> Counter[str]:
    """Re-run events whatever their status (admin action, ``replay_webhooks``). Handlers are idempotent:
    an event whose effects are already there changes nothing. The actor (staff or the command) is what
    the audit trail shows: every replayed event gets an audit row with who ran it and the outcome, even
    when the replay changed nothing (what changed, if anything, is on the case timelines too)."""
    counts: Counter[str] = Counter()
    for pk in pks:
        row = StripeEvent.objects.filter(pk=pk).values_list("type", "event_id").first()
        if row is None:
            continue
        label = f"{actor.label} (replay of {row[1]})"
        outcome = stripe_event_process(pk=pk, force=True, actor=replace(actor, label=label)) or "busy"
        counts[outcome] += 1
        result, error = StripeEvent.objects.filter(pk=pk).values_list("result", "error").get()
        audit_record(
            actor=actor,
            action="stripe_event.replayed",
            reason=(error or result)[:500],
            details={"stripe_event_pk": pk, "event_id": row[1], "type": row[0], "outcome": outcome},
        )
    return counts
