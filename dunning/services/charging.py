"""Charging: the pending-attempt protocol, single charges, and gateway calls in a pool.

The protocol that keeps invariant 1 (at most one successful charge per invoice):
1. insert the attempt as ``pending``, with the charger's claim and lease, and commit; a partial unique
   index allows one attempt in flight per invoice, so a concurrent charge of the same invoice fails to
   insert instead of charging;
2. call the gateway outside any transaction, with the attempt's idempotency key, while a heartbeat keeps
   the lease alive; an owner whose lease is running out sends nothing more;
3. record the result. An unanswered call leaves the attempt ``unknown``. Only the gateway's answer, or its
   records (a truth query), settle an attempt: ``dunning.services.reconcile`` asks them, and when they
   know nothing it sends the same idempotency key again, so the processor charges at most once.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus, PaymentMethod
from dunning.gateways import (
    INTERNAL_PROCESSOR,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    GatewayError,
    PaymentGateway,
    get_gateway,
)
from dunning.gateways.ratelimit import shared_bucket
from dunning.models import AttemptSource, CaseEventKind, DunningCase, PaymentAttempt, attempt_idempotency_key
from dunning.services.cases import next_attempt_number
from dunning.services.declines import DeclineTable
from dunning.services.events import EventBuffer
from dunning.services.leases import Clock, LeaseKeeper
from dunning.services.outcomes import Settlement, settle_attempts
from dunning.services.retrying import in_transaction

# Sources that charge "the customer's current default": at a gateway that keeps its own (Stripe), the one
# it holds at charge time, which a missed webhook may have changed without us knowing.
CURRENT_DEFAULT_SOURCES = frozenset({AttemptSource.RETRY, AttemptSource.STAFF})


class ChargeRefused(Exception):
    """The charge was not attempted, for a reason the caller can show (already paid, already in flight)."""


class NotSent(Exception):
    """The owner's lease was running out, so the request was never sent: the attempt is someone else's now."""


def new_claim_token() -> str:
    return uuid.uuid4().hex


def lease_length() -> timedelta:
    return timedelta(seconds=settings.DUNNING_CLAIM_LEASE_SECONDS)


def charge_request_for(
    *,
    attempt_id: int,
    amount_minor: int,
    currency: str,
    gateway: str,
    invoice: Invoice,
    method: PaymentMethod | None,
    source: str = AttemptSource.RETRY,
    customer_present: bool = False,
    blocked_refs: tuple[str, ...] = (),
) -> ChargeRequest:
    """What the gateway is asked for one attempt (its id makes the idempotency key). Built only from the
    attempt's own columns, so sending it again later asks for exactly the same charge."""
    customer = invoice.customer
    return ChargeRequest(
        idempotency_key=attempt_idempotency_key(attempt_id),
        amount_minor=amount_minor,
        currency=currency,
        customer_ref=customer.gateway_customer_id,
        payment_method_ref=method.gateway_payment_method_id if method else "",
        invoice_number=invoice.number,
        gateway_invoice_ref=invoice.gateway_invoice_id if invoice.gateway == gateway else "",
        off_session=not customer_present,
        metadata={"customer": customer.external_id, "invoice": invoice.number, "attempt": str(attempt_id)},
        use_gateway_default=source in CURRENT_DEFAULT_SOURCES and not customer_present,
        blocked_payment_method_refs=tuple(ref for ref in blocked_refs if ref),
    )


def call_gateway(
    gateway: PaymentGateway,
    requests: Sequence[tuple[int, ChargeRequest]],
    *,
    concurrency: int | None = None,
    keeper: LeaseKeeper | None = None,
    token: str = "",
) -> dict[int, ChargeResult | Exception]:
    """Charge every request, ``concurrency`` at a time, under the configured requests-per-second limit
    (shared by every call in the process, so concurrent tick workers stay within it together).

    With a ``keeper``, each request is sent only while the claim ``token`` has enough lease left; the
    others come back as :class:`NotSent`.
    """
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
                # Checked after waiting for the rate limit: the wait itself may have used the lease up.
                if keeper is not None and not keeper.may_send(token):
                    results[key] = NotSent("the claim's lease was running out: not sent")
                    continue
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
    """The gateway's answer as a result, or None (outcome unknown) with why."""
    if isinstance(outcome, ChargeResult):
        if outcome.outcome == ChargeOutcome.UNKNOWN:
            return None, outcome.message or "gateway could not tell"
        return outcome, ""
    if isinstance(outcome, GatewayError) and not outcome.retryable:
        # A permanent gateway error: the request was refused before anything was charged.
        return refusal(outcome.code or "gateway_error", str(outcome)), ""
    return None, f"{type(outcome).__name__}: {outcome}"


def refusal(code: str, message: str) -> ChargeResult:
    """A charge that never reached the processor: recorded, shown, never counted as a retry."""
    return ChargeResult(
        outcome=ChargeOutcome.DECLINED,
        decline_processor=INTERNAL_PROCESSOR,
        decline_code=code,
        message=message,
    )


def is_gateway_failure(outcome: ChargeResult | Exception) -> bool:
    """A failure of the gateway itself (timeout, 5xx, rate limit, network): what the circuit breaker counts."""
    if isinstance(outcome, NotSent):
        return False
    if isinstance(outcome, ChargeResult):
        return outcome.outcome == ChargeOutcome.UNKNOWN
    return not (isinstance(outcome, GatewayError) and not outcome.retryable)


def attempt_charge(
    *,
    invoice: Invoice,
    source: str,
    actor: Actor,
    payment_method: PaymentMethod | None = None,
    channel: str = "",
    gateway: PaymentGateway | None = None,
    customer_present: bool = False,
) -> PaymentAttempt:
    """Charge one invoice now (staff "retry now", portal "pay now", a new card). Never charges twice.

    Raises :class:`ChargeRefused` when the invoice is not open or another charge of it is in flight.
    ``customer_present``: the customer is on the portal (on-session), so the bank may ask them to
    authenticate.
    """
    now = timezone.now()
    clock = Clock(now)
    token = new_claim_token()
    lease = lease_length()
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
                    customer_present=customer_present,
                    claim_token=token,
                    claimed_until=now + lease,
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
    # Committed: the pending attempt exists, and is ours, before any money can move.
    blocked = _blocked_method_refs(case)
    request = charge_request_for(
        attempt_id=attempt.pk,
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        gateway=attempt.gateway,
        invoice=invoice,
        method=method,
        source=source,
        customer_present=customer_present,
        blocked_refs=blocked,
    )
    with LeaseKeeper(clock=clock, lease=lease) as keeper:
        keeper.add(token, now + lease)
        outcome = call_gateway(gateway, [(attempt.pk, request)], concurrency=1, keeper=keeper, token=token)[
            attempt.pk
        ]
    result, error = result_or_unknown(outcome)
    settlement = Settlement(
        attempt_id=attempt.pk,
        invoice_id=invoice.pk,
        amount_minor=attempt.amount_minor,
        source=source,
        payment_method_id=method.pk,
        case=case,
        result=result,
        error=error,
        channel=channel,
        claim_token=token,
    )
    table = DeclineTable()

    def record() -> None:
        events = EventBuffer()
        # The case as it is now: settle_attempts locks it and applies the result to a fresh copy.
        settle_attempts(settlements=[settlement], table=table, actor=actor, now=timezone.now(), events=events)
        events.flush()

    in_transaction(record, what=f"recording attempt {attempt.pk}")
    attempt.refresh_from_db()
    return attempt


def _blocked_method_refs(case: DunningCase | None) -> tuple[str, ...]:
    if case is None or case.hard_declined_payment_method_id is None:
        return ()
    ref = (
        PaymentMethod.objects.filter(pk=case.hard_declined_payment_method_id)
        .values_list("gateway_payment_method_id", flat=True)
        .first()
    )
    return (ref,) if ref else ()
