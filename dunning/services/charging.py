"""Charging: the pending-attempt protocol, single charges, gateway calls in a pool, and reconciliation.

The protocol that keeps invariant 1 (at most one successful charge per invoice):
1. insert the attempt as ``pending`` and commit; a partial unique index allows one attempt in flight per
   invoice, so a concurrent charge of the same invoice fails to insert instead of charging;
2. call the gateway outside any transaction, with the attempt's idempotency key;
3. record the result; an unanswered call leaves the attempt ``unknown``, and it is reconciled with the
   gateway (:func:`attempts_reconcile`) before the invoice is charged again.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus, PaymentMethod
from dunning.gateways import (
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    GatewayError,
    PaymentGateway,
    TruthQuery,
    get_gateway,
)
from dunning.gateways.ratelimit import shared_bucket
from dunning.models import (
    AttemptStatus,
    CaseEventKind,
    DunningCase,
    PaymentAttempt,
    attempt_idempotency_key,
)
from dunning.services.cases import next_attempt_number
from dunning.services.declines import DeclineTable
from dunning.services.events import EventBuffer
from dunning.services.outcomes import Settlement, settle_attempts

NOT_CHARGED = ChargeResult(
    outcome=ChargeOutcome.DECLINED,
    decline_processor="internal",
    decline_code="not_charged",
    message="The gateway has no record of this charge.",
)


class ChargeRefused(Exception):
    """The charge was not attempted, for a reason the caller can show (already paid, already in flight)."""


def charge_request_for(
    *,
    attempt_id: int,
    amount_minor: int,
    currency: str,
    gateway: str,
    invoice: Invoice,
    method: PaymentMethod | None,
) -> ChargeRequest:
    """What the gateway is asked for one pending attempt (its id makes the idempotency key)."""
    customer = invoice.customer
    return ChargeRequest(
        idempotency_key=attempt_idempotency_key(attempt_id),
        amount_minor=amount_minor,
        currency=currency,
        customer_ref=customer.gateway_customer_id,
        payment_method_ref=method.gateway_payment_method_id if method else "",
        invoice_number=invoice.number,
        gateway_invoice_ref=invoice.gateway_invoice_id if invoice.gateway == gateway else "",
        metadata={"customer": customer.external_id, "invoice": invoice.number, "attempt": str(attempt_id)},
    )


def call_gateway(
    gateway: PaymentGateway, requests: Sequence[tuple[int, ChargeRequest]], *, concurrency: int | None = None
) -> dict[int, ChargeResult | Exception]:
    """Charge every request, ``concurrency`` at a time, under the configured requests-per-second limit
    (shared by every call in the process, so concurrent tick workers stay within it together)."""
    concurrency = concurrency or settings.DUNNING_GATEWAY_CONCURRENCY
    rate = settings.DUNNING_GATEWAY_RATE_LIMIT
    bucket = shared_bucket(rate) if rate > 0 else None
    results: dict[int, ChargeResult | Exception] = {}
    queue = deque(requests)
    lock = threading.Lock()

    def work(in_thread: bool) -> None:
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    key, request = queue.popleft()
                if bucket is not None:
                    bucket.acquire()
                try:
                    results[key] = gateway.charge(request)
                except Exception as error:  # noqa: BLE001 - any failure leaves the outcome unknown
                    results[key] = error
        finally:
            if in_thread:
                connections.close_all()  # this thread's own connections, if the gateway used the database

    workers = min(concurrency, len(requests))
    if workers <= 1:
        work(in_thread=False)
        return results
    threads = [threading.Thread(target=work, args=(True,), daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def result_or_unknown(outcome: ChargeResult | Exception) -> tuple[ChargeResult | None, str]:
    if isinstance(outcome, ChargeResult):
        if outcome.outcome == ChargeOutcome.UNKNOWN:
            return None, outcome.message or "gateway could not tell"
        return outcome, ""
    if isinstance(outcome, GatewayError) and not outcome.retryable:
        # A permanent gateway error: nothing was charged.
        return (
            ChargeResult(
                outcome=ChargeOutcome.DECLINED,
                decline_processor="internal",
                decline_code=outcome.code or "gateway_error",
                message=str(outcome),
            ),
            "",
        )
    return None, f"{type(outcome).__name__}: {outcome}"


def attempt_charge(
    *,
    invoice: Invoice,
    source: str,
    actor: Actor,
    payment_method: PaymentMethod | None = None,
    channel: str = "",
    gateway: PaymentGateway | None = None,
) -> PaymentAttempt:
    """Charge one invoice now (staff "retry now", portal "pay now", a new card). Never charges twice.

    Raises :class:`ChargeRefused` when the invoice is not open or another charge of it is in flight.
    """
    now = timezone.now()
    with transaction.atomic():
        # FOR NO KEY UPDATE, not FOR UPDATE: inserting an attempt elsewhere takes a KEY SHARE lock on the
        # invoice (the foreign key check); a plain FOR UPDATE here would deadlock against a tick doing that.
        invoice = (
            Invoice.objects.select_for_update(no_key=True, of=("self",))
            .select_related("customer")
            .get(pk=invoice.pk)
        )
        if invoice.status != InvoiceStatus.OPEN:
            raise ChargeRefused(f"Invoice {invoice.number} is {invoice.status}: there is nothing to charge.")
        method = payment_method or invoice.customer.payment_methods.filter(is_default=True).first()
        if method is None:
            raise ChargeRefused("There is no payment method on file.")
        case = DunningCase.objects.filter(invoice=invoice).select_related("customer", "invoice").first()
        gateway = gateway or get_gateway()
        try:
            with transaction.atomic():
                attempt = PaymentAttempt.objects.create(
                    invoice=invoice,
                    case=case,
                    payment_method=method,
                    number=next_attempt_number(invoice),
                    source=source,
                    amount_minor=invoice.amount_due_minor - invoice.amount_paid_minor,
                    currency=invoice.currency,
                    gateway=gateway.name,
                    created_at=now,
                )
        except IntegrityError:
            raise ChargeRefused(
                f"Invoice {invoice.number} is already being paid, or was just paid: nothing was charged."
            ) from None
        if case is not None:
            events = EventBuffer()
            events.add(
                case_id=case.pk,
                kind=CaseEventKind.ATTEMPT_STARTED,
                actor=actor,
                at=now,
                reason=source,
                details={"attempt_id": attempt.pk, "payment_method_id": method.pk},
            )
            events.flush()
    # Committed: the pending attempt exists before any money can move.
    request = charge_request_for(
        attempt_id=attempt.pk,
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        gateway=attempt.gateway,
        invoice=invoice,
        method=method,
    )
    outcome = call_gateway(gateway, [(attempt.pk, request)], concurrency=1)[attempt.pk]
    result, error = result_or_unknown(outcome)
    with transaction.atomic():
        if case is not None:
            case = DunningCase.objects.select_related("customer", "invoice").get(pk=case.pk)
        events = EventBuffer()
        settle_attempts(
            settlements=[
                Settlement(
                    attempt_id=attempt.pk,
                    invoice_id=invoice.pk,
                    amount_minor=attempt.amount_minor,
                    source=source,
                    payment_method_id=method.pk,
                    case=case,
                    result=result,
                    error=error,
                    channel=channel,
                )
            ],
            table=DeclineTable(),
            actor=actor,
            now=timezone.now(),
            events=events,
        )
        events.flush()
    attempt.refresh_from_db()
    return attempt


def attempts_to_reconcile(*, now: datetime, limit: int = 1000) -> list[PaymentAttempt]:
    """Attempts whose outcome we never learnt: ``unknown`` ones, and ``pending`` ones older than a claim
    lease (their process died between the gateway call and the commit)."""
    stale = now - timedelta(seconds=settings.DUNNING_CLAIM_LEASE_SECONDS)
    return list(
        PaymentAttempt.objects.filter(
            Q(status=AttemptStatus.UNKNOWN) | Q(status=AttemptStatus.PENDING, created_at__lt=stale)
        )
        .select_related("invoice__customer", "case__customer", "case__invoice")
        .order_by("id")[:limit]
    )


def attempts_reconcile(*, gateway: PaymentGateway, actor: Actor, now: datetime) -> Counter[str]:
    """Ask the gateway what really happened to every unsettled attempt, and record it."""
    attempts = attempts_to_reconcile(now=now)
    counts: Counter[str] = Counter()
    if not attempts:
        return counts
    settlements = []
    for attempt in attempts:
        try:
            truth = gateway.get_truth(
                TruthQuery(
                    idempotency_key=attempt.idempotency_key,
                    gateway_reference=attempt.gateway_reference,
                    gateway_invoice_ref=attempt.invoice.gateway_invoice_id,
                    amount_minor=attempt.amount_minor,
                    currency=attempt.currency,
                    customer_ref=attempt.invoice.customer.gateway_customer_id,
                    started_at=attempt.created_at,
                )
            )
        except GatewayError:
            counts["reconcile.unreachable"] += 1
            continue  # still unknown; try again next tick, and charge nothing meanwhile
        settlements.append(
            Settlement(
                attempt_id=attempt.pk,
                invoice_id=attempt.invoice_id,
                amount_minor=attempt.amount_minor,
                source=attempt.source,
                payment_method_id=attempt.payment_method_id,
                case=attempt.case,
                result=truth if truth is not None else NOT_CHARGED,
                reconciling=True,
            )
        )
    with transaction.atomic():
        events = EventBuffer()
        for s in settlements:
            if s.case is not None:
                events.add(
                    case_id=s.case.pk,
                    kind=CaseEventKind.ATTEMPT_RECONCILED,
                    actor=actor,
                    at=now,
                    reason="settled with the gateway's records",
                    details={
                        "attempt_id": s.attempt_id,
                        "outcome": s.result.outcome if s.result else "unknown",
                    },
                )
        settled, _ = settle_attempts(
            settlements=settlements, table=DeclineTable(), actor=actor, now=now, events=events
        )
        events.flush()
    counts["reconciled"] += len(settlements)
    counts.update({f"reconcile.{key}": n for key, n in settled.items()})
    return counts
