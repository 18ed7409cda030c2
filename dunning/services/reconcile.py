"""Reconciliation: settle attempts whose outcome we never learnt, once each, from the gateway itself.

Work is claimed like any other: one process takes a set of attempts (``unknown`` ones, and ``pending`` ones
whose owner's lease ended) with a lease of its own, so each attempt is asked about once, not once per
tick process. For each, the gateway's records say what happened (a truth query). When they have no
record, the same request is sent again with the same idempotency key: the processor then charges at most
once, whether or not the first request is still on its way, and its answer settles the attempt. Only
when the invoice is no longer open is nothing sent again, and the attempt is closed as not charged.
A truth query that fails leaves the attempt for a later tick; nothing else charges the invoice meanwhile.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from customers.actors import Actor
from customers.models import InvoiceStatus, PaymentMethod
from dunning.gateways import GatewayError, PaymentGateway, TruthQuery
from dunning.gateways.ratelimit import shared_bucket
from dunning.models import IN_FLIGHT_STATUSES, PaymentAttempt
from dunning.services.charging import (
    NotSent,
    call_gateway,
    charge_request_for,
    is_gateway_failure,
    lease_length,
    new_claim_token,
    refusal,
    result_or_unknown,
)
from dunning.services.circuit import Gate, circuit_counter, circuit_gate, circuit_record
from dunning.services.declines import DeclineTable
from dunning.services.events import EventBuffer
from dunning.services.leases import Clock, LeaseKeeper
from dunning.services.outcomes import Settlement, settle_attempts
from dunning.services.retrying import in_transaction

# A failed truth query is asked again after this long (by whichever tick claims the attempt then).
UNREACHABLE_BACKOFF = timedelta(minutes=1)


def attempts_claim_unsettled(*, now: datetime, lease: timedelta, limit: int) -> tuple[str, list[int]]:
    """Lease up to ``limit`` unsettled attempts whose claim has ended to a new token; returns it and the ids.

    PostgreSQL: ``SKIP LOCKED``, so concurrent ticks take disjoint sets. The statement locks only attempt
    rows and never waits, so it cannot join a deadlock.
    """
    token = new_claim_token()
    table = PaymentAttempt._meta.db_table
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = f"""
        UPDATE {table} SET claimed_until = %s, claim_token = %s
        WHERE id IN (
            SELECT id FROM {table}
            WHERE status IN (%s, %s) AND (claimed_until IS NULL OR claimed_until <= %s)
            ORDER BY id LIMIT %s {lock}
        )
        RETURNING id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [now + lease, token, *IN_FLIGHT_STATUSES, now, limit])
        ids = sorted(row[0] for row in cursor.fetchall())
    return token, ids


def _release(*, ids: list[int], token: str, until: datetime | None) -> None:
    """Give claims back (``until`` None: at once; else not before then)."""
    if ids:
        PaymentAttempt.objects.filter(pk__in=ids, claim_token=token, status__in=IN_FLIGHT_STATUSES).update(
            claimed_until=until, claim_token="" if until is None else token
        )


def attempts_reconcile(
    *,
    gateway: PaymentGateway,
    actor: Actor,
    now: datetime,
    clock: Clock | None = None,
    keeper: LeaseKeeper | None = None,
    limit: int = 1000,
) -> Counter[str]:
    """Ask the gateway what really happened to unsettled attempts, and record it (once per attempt)."""
    clock = clock or Clock(now)
    lease = lease_length()
    token, ids = attempts_claim_unsettled(now=clock(), lease=lease, limit=limit)
    counts: Counter[str] = Counter()
    if not ids:
        return counts
    own_keeper = keeper is None
    keeper = keeper or LeaseKeeper(clock=clock, lease=lease)
    keeper.add(token, clock() + lease)
    try:
        attempts = list(
            PaymentAttempt.objects.filter(pk__in=ids, claim_token=token)
            .select_related("invoice__customer", "case__customer", "case__invoice", "payment_method")
            .order_by("id")
        )
        settlements, resend, unreachable = _ask_the_gateway(attempts, gateway=gateway, counts=counts)
        gate = circuit_gate(gateway=gateway.name, now=clock()) if resend else Gate.CLOSED
        if gate != Gate.CLOSED:
            # An outage: nothing is sent again until the breaker lets a probe through.
            keep = settings.DUNNING_CIRCUIT_PROBE_SIZE if gate == Gate.PROBE else 0
            counts["reconcile.paused_gateway_outage"] += len(resend[keep:])
            unreachable += [attempt.pk for attempt in resend[keep:]]
            resend = resend[:keep]
        settlements += _send_again(
            resend,
            gateway=gateway,
            keeper=keeper,
            token=token,
            counts=counts,
            probe=gate == Gate.PROBE,
            clock=clock,
        )
        table = DeclineTable()

        def record() -> Counter[str]:
            events = EventBuffer()
            settled, _ = settle_attempts(
                settlements=settlements, table=table, actor=actor, now=now, events=events
            )
            events.flush()
            return settled

        if settlements:
            settled = in_transaction(record, what="recording reconciled attempts")
            counts["reconciled"] += len(settlements)
            counts.update({f"reconcile.{key}": n for key, n in settled.items()})
        _release(ids=unreachable, token=token, until=clock() + UNREACHABLE_BACKOFF)
    finally:
        keeper.remove(token)
        if own_keeper:
            keeper.close()
    return counts


def _ask_the_gateway(
    attempts: list[PaymentAttempt], *, gateway: PaymentGateway, counts: Counter[str]
) -> tuple[list[Settlement], list[PaymentAttempt], list[int]]:
    """Truth queries: (settlements from the gateway's records, attempts to send again, unreachable ids)."""
    bucket_rate = _rate()
    bucket = shared_bucket(bucket_rate) if bucket_rate > 0 else None
    settlements: list[Settlement] = []
    resend: list[PaymentAttempt] = []
    unreachable: list[int] = []
    for attempt in attempts:
        if bucket is not None:
            bucket.acquire()
        try:
            truth = gateway.get_truth(
                TruthQuery(
                    idempotency_key=attempt.idempotency_key,
                    gateway_reference=attempt.gateway_reference,
                    gateway_invoice_ref=attempt.invoice.gateway_invoice_id
                    if attempt.invoice.gateway == attempt.gateway
                    else "",
                    amount_minor=attempt.amount_minor,
                    currency=attempt.currency,
                    customer_ref=attempt.invoice.customer.gateway_customer_id,
                    started_at=attempt.created_at,
                )
            )
        except GatewayError:
            counts["reconcile.unreachable"] += 1
            unreachable.append(attempt.pk)  # still unknown; asked again later, nothing charged meanwhile
            continue
        if truth is not None:
            settlements.append(_settlement(attempt, truth))
        elif attempt.invoice.status == InvoiceStatus.OPEN:
            resend.append(attempt)
        else:
            # Nothing to collect any more, and the gateway never saw the request: it is closed unsent. (Its
            # owner lost the claim before sending, so the request will not arrive later; if it ever did,
            # its answer would still be recorded and a success flagged as a double payment.)
            settlements.append(
                _settlement(
                    attempt,
                    refusal(
                        "not_charged",
                        f"The gateway has no record of this charge and the invoice is {attempt.invoice.status}: "
                        "not sent again.",
                    ),
                )
            )
    return settlements, resend, unreachable


def _send_again(
    attempts: list[PaymentAttempt],
    *,
    gateway: PaymentGateway,
    keeper: LeaseKeeper,
    token: str,
    counts: Counter[str],
    probe: bool,
    clock: Clock,
) -> list[Settlement]:
    """The same request, with the same idempotency key, for attempts the gateway has no record of."""
    if not attempts:
        return []
    blocked_ids = {a.case.hard_declined_payment_method_id for a in attempts if a.case is not None} - {None}
    blocked_refs = dict(
        PaymentMethod.objects.filter(pk__in=blocked_ids).values_list("pk", "gateway_payment_method_id")
    )
    requests = []
    for attempt in attempts:
        block = attempt.case.hard_declined_payment_method_id if attempt.case is not None else None
        requests.append(
            (
                attempt.pk,
                charge_request_for(
                    attempt_id=attempt.pk,
                    amount_minor=attempt.amount_minor,
                    currency=attempt.currency,
                    gateway=attempt.gateway,
                    invoice=attempt.invoice,
                    method=attempt.payment_method,
                    source=attempt.source,
                    customer_present=attempt.customer_present,
                    blocked_refs=(blocked_refs[block],) if block in blocked_refs else (),
                ),
            )
        )
    outcomes = call_gateway(gateway, requests, keeper=keeper, token=token)
    sent = [o for o in outcomes.values() if not isinstance(o, NotSent)]
    failed = [o for o in sent if is_gateway_failure(o)]
    error = str(failed[-1]) if failed else ""
    if probe:
        circuit_record(
            gateway=gateway.name,
            calls=len(sent),
            failures=len(failed),
            now=clock(),
            last_error=error,
            probe=True,
        )
    elif sent:
        circuit_counter(gateway.name).add(
            calls=len(sent), failures=len(failed), last_error=error, now=clock()
        )
    settlements = []
    for attempt in attempts:
        result, error = result_or_unknown(outcomes[attempt.pk])
        counts["reconcile.sent_again"] += 1
        settlements.append(_settlement(attempt, result, error=error, token=token))
    return settlements


def _settlement(attempt: PaymentAttempt, result: object, *, error: str = "", token: str = "") -> Settlement:
    return Settlement(
        attempt_id=attempt.pk,
        invoice_id=attempt.invoice_id,
        amount_minor=attempt.amount_minor,
        source=attempt.source,
        payment_method_id=attempt.payment_method_id,
        case=attempt.case,
        result=result,  # type: ignore[arg-type]
        error=error,
        retry_step=None,
        reconciling=True,
        claim_token=token or attempt.claim_token,
    )


def _rate() -> float:
    return settings.DUNNING_GATEWAY_RATE_LIMIT
