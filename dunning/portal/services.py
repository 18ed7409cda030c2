"""What the portal's buttons do, and the staff actions on portal links. Keyword-only; every change audited.

Money moves only through the dunning engine's own services: a new payment method goes through
``customer_payment_method_updated`` (which unblocks hard-declined cases and charges each open invoice
once), "Pay now" through ``attempt_charge`` (the pending-attempt protocol: a double submission finds the
first charge in flight or the invoice paid, and never charges twice). Recoveries are credited to the
channel the link came from (email, banner, or another link).

Portal activity is written on the customer's case timelines as ``portal`` events whose ``details``
carry ``action`` (see :class:`PortalAction`), ``source`` and ``channel``, for the recovery-by-channel report.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from customers.actors import Actor
from customers.models import Customer, PaymentMethod
from customers.services import audit_record, payment_method_save, payment_method_set_default
from dunning.gateways import GatewayError, PaymentGateway, PaymentMethodDetails, SetupSession, get_gateway
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEventKind,
    DunningCase,
    PaymentAttempt,
    PortalAccess,
)
from dunning.portal.selectors import (
    card_label,
    customers_for_billing_address,
    pay_now_blocked_reason,
    payable_cases,
)
from dunning.portal.tokens import CHANNEL_BY_SOURCE, LinkSource, PortalLink, portal_link_for
from dunning.services.charging import ChargeRefused, attempt_charge
from dunning.services.events import EventBuffer
from dunning.services.retry_owner import gateway_owns_retries
from dunning.services.staff import customer_payment_method_updated
from notifications.services import MessageRequest, notifications_enqueue

logger = logging.getLogger(__name__)

# Reloads and mail scanners open a link many times: one visit event per case and source per half hour.
VISIT_EVENT_EVERY_SECONDS = 30 * 60


class PortalAction(StrEnum):
    """``details["action"]`` of the portal events on case timelines."""

    VISIT = "visit"
    PAYMENT_METHOD_UPDATED = "payment_method_updated"
    PAY_NOW = "pay_now"
    OUTCOME = "outcome"
    HOSTED_PAGE_OPENED = "hosted_page_opened"
    HOSTED_PAGE_ABANDONED = "hosted_page_abandoned"
    FRESH_LINK_SENT = "fresh_link_sent"
    LINK_COPIED = "link_copied"
    LINK_EMAILED = "link_emailed"
    LINKS_REVOKED = "links_revoked"


class OutcomeStatus(StrEnum):
    PAID = "paid"  # nothing is left to pay
    DECLINED = "declined"  # a charge was declined: the page says why, and offers another card
    PENDING = "pending"  # a charge is in flight, or its result is not known yet
    SAVED = "saved"  # the method is saved; what is left was not charged (a paused case): "Pay now" remains
    NOTHING_DUE = "nothing_due"
    BLOCKED = "blocked"  # this card cannot be charged again (hard decline, authentication, expired)
    ABANDONED = "abandoned"  # back from the gateway's page without a new method


@dataclass(frozen=True)
class PortalOutcome:
    status: str
    attempts: tuple[PaymentAttempt, ...] = ()
    message: str = ""


def portal_actor(link: PortalLink) -> Actor:
    """The customer, acting through a link; the label says which kind of link."""
    return Actor.customer(label=f"customer (portal, {link.source} link)")


def _record(
    *,
    case_ids: Sequence[int],
    action: str,
    actor: Actor,
    reason: str,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    if not case_ids:
        return
    events = EventBuffer()
    at = now or timezone.now()
    for case_id in case_ids:
        events.add(
            case_id=case_id,
            kind=CaseEventKind.PORTAL,
            actor=actor,
            at=at,
            reason=reason,
            details={"action": action, **(details or {})},
        )
    events.flush()


def _link_details(link: PortalLink) -> dict[str, Any]:
    return {"source": link.source, "channel": link.channel}


def portal_visit_record(*, link: PortalLink, case_ids: Sequence[int]) -> int:
    """A page view: one audit row per case (at most one per half hour), nothing else. Returns rows written.

    This is the only write a GET makes. It changes no case, invoice, attempt, banner or message.
    """
    try:
        fresh = [
            case_id
            for case_id in case_ids
            if cache.add(f"portal:visit:{case_id}:{link.source}", 1, VISIT_EVENT_EVERY_SECONDS)
        ]
    except Exception:  # noqa: BLE001 - the cache (Redis) is down: the page must still open
        logger.exception("portal visits: the cache is unreachable; this visit is not recorded")
        return 0
    _record(
        case_ids=fresh,
        action=PortalAction.VISIT,
        actor=portal_actor(link),
        reason=f"opened the payment page ({link.source} link)",
        details=_link_details(link),
    )
    return len(fresh)


def _outcome(*, customer_id: int, attempts: Sequence[PaymentAttempt], method_id: int | None) -> PortalOutcome:
    """What the customer should be told, from the state after the charges (not from what we hoped)."""
    remaining = payable_cases(customer_id=customer_id)
    if not remaining:
        return PortalOutcome(OutcomeStatus.PAID, tuple(attempts))
    statuses = {attempt.status for attempt in attempts}
    if not attempts and method_id is not None:
        # Nothing charged by this call (a webhook got there first): report the last charge on this method.
        last = (
            PaymentAttempt.objects.filter(
                invoice_id__in=[case.invoice_id for case in remaining], payment_method_id=method_id
            )
            .order_by("-created_at", "-id")
            .values_list("status", flat=True)
            .first()
        )
        statuses = {last} if last else set()
    if AttemptStatus.FAILED in statuses:
        return PortalOutcome(OutcomeStatus.DECLINED, tuple(attempts))
    if statuses & {AttemptStatus.PENDING, AttemptStatus.UNKNOWN}:
        return PortalOutcome(OutcomeStatus.PENDING, tuple(attempts))
    return PortalOutcome(OutcomeStatus.SAVED, tuple(attempts))


def _outcome_reason(outcome: PortalOutcome) -> str:
    codes = sorted({a.decline_code for a in outcome.attempts if a.status == AttemptStatus.FAILED})
    charged = len(outcome.attempts)
    suffix = f" ({', '.join(codes)})" if codes else ""
    return f"{outcome.status}{suffix}: {charged} charge(s) attempted"


def portal_payment_method_confirmed(
    *,
    customer: Customer,
    details: PaymentMethodDetails,
    channel: str,
    actor: Actor,
    gateway: PaymentGateway | None = None,
    retry_if_unchanged: bool = False,
) -> PortalOutcome:
    """A new payment method was confirmed (the portal's form, the gateway's page on return, or its webhook).

    Every open invoice the customer can pay here is charged once on it at once, customer present (so the
    bank may ask them to authenticate), whatever its case's state: a customer who comes back after the
    automation gave up is charged too. The method becomes the default (here and at the gateway) only once
    a charge on it succeeded, or when nothing was due: a card that declines never replaces the one on
    file. Idempotent for the gateway's two confirmations of one method (the return and the webhook): only
    the first charges, unless ``retry_if_unchanged`` (the customer typed the current card again).
    """
    own_gateway = gateway is None
    gateway = gateway or get_gateway()
    try:
        cases = payable_cases(customer_id=customer.pk)
        ours = [case for case in cases if not _gateway_retries(case)]
        with transaction.atomic():
            # One confirmation per customer at a time: two clicks never save the card twice.
            Customer.objects.select_for_update(no_key=True).filter(pk=customer.pk).first()
            previous = (
                PaymentMethod.objects.filter(customer=customer, is_default=True)
                .values_list("pk", flat=True)
                .first()
            )
            known = PaymentMethod.objects.filter(
                customer=customer, gateway_payment_method_id=details.gateway_payment_method_id
            ).exists()
            method, created = payment_method_save(
                customer=customer,
                actor=actor,
                gateway_payment_method_id=details.gateway_payment_method_id,
                type=details.type,
                brand=details.brand,
                last4=details.last4,
                exp_month=details.exp_month,
                exp_year=details.exp_year,
                funding=details.funding,
                country=details.country,
                # Nothing of ours to charge (or no card on file at all): it is the card on file at once.
                make_default=not ours or previous is None,
            )
        changed = created or previous != method.pk
        case_ids = [case.pk for case in cases]
        event_details = {"payment_method_id": method.pk, "channel": channel, "new": changed}
        _record(
            case_ids=case_ids,
            action=PortalAction.PAYMENT_METHOD_UPDATED,
            actor=actor,
            reason=f"{'new' if changed else 'same'} payment method: {card_label(method)}",
            details=event_details,
        )
        if known and not retry_if_unchanged and (not changed or _tried(method, ours)):
            # The gateway's second confirmation of a card already charged (its page and its webhook):
            # report what happened, charge nothing more.
            return _outcome(customer_id=customer.pk, attempts=[], method_id=method.pk)
        if known:
            blocked = pay_now_blocked_reason(cases=cases, method=method)
            if blocked:
                _record(
                    case_ids=case_ids,
                    action=PortalAction.OUTCOME,
                    actor=actor,
                    reason="blocked: the card that was declined, entered again",
                    details=event_details,
                )
                return PortalOutcome(OutcomeStatus.BLOCKED, message=blocked)
        attempts = _charge_on(method=method, cases=ours, actor=actor, channel=channel, gateway=gateway)
        if method.is_default or any(a.status == AttemptStatus.SUCCEEDED for a in attempts):
            _make_default(method=method, customer=customer, actor=actor, gateway=gateway, case_ids=case_ids)
        outcome = _outcome(customer_id=customer.pk, attempts=attempts, method_id=method.pk)
        _record(
            case_ids=case_ids,
            action=PortalAction.OUTCOME,
            actor=actor,
            reason=_outcome_reason(outcome),
            details={**event_details, "status": outcome.status},
        )
        return outcome
    finally:
        if own_gateway:
            gateway.close()


def _tried(method: PaymentMethod, cases: Sequence[DunningCase]) -> bool:
    """An invoice of these cases was already charged on this method since it was last saved."""
    return PaymentAttempt.objects.filter(
        invoice_id__in=[case.invoice_id for case in cases],
        payment_method=method,
        created_at__gte=method.updated_at,
    ).exists()


def _gateway_retries(case: DunningCase) -> bool:
    invoice = case.invoice
    return gateway_owns_retries(gateway=invoice.gateway, gateway_invoice_id=invoice.gateway_invoice_id)


def _charge_on(
    *,
    method: PaymentMethod,
    cases: Sequence[DunningCase],
    actor: Actor,
    channel: str,
    gateway: PaymentGateway,
) -> list[PaymentAttempt]:
    """Charge each invoice once on ``method``, the customer present; an invoice paid or in flight is skipped."""
    attempts = []
    for case in cases:
        try:
            attempts.append(
                attempt_charge(
                    invoice=case.invoice,
                    source=AttemptSource.CARD_UPDATED,
                    actor=actor,
                    payment_method=method,
                    channel=channel,
                    gateway=gateway,
                    customer_present=True,
                )
            )
        except ChargeRefused:
            continue  # paid a moment ago, or a charge is in flight: never a second one
    return attempts


def _make_default(
    *, method: PaymentMethod, customer: Customer, actor: Actor, gateway: PaymentGateway, case_ids: list[int]
) -> None:
    """The card proved itself (or nothing was due): the card on file here and at the gateway; cases blocked
    on the old card may retry on it."""
    if not method.is_default:
        payment_method_set_default(payment_method=method, actor=actor)
    customer_payment_method_updated(customer_id=customer.pk, actor=actor, charge=False)
    try:
        gateway.set_default_payment_method(
            customer_ref=customer.gateway_customer_id, payment_method_ref=method.gateway_payment_method_id
        )
    except GatewayError as error:
        # Charges name their method explicitly, so they still use it; staff see the gap.
        logger.warning("Could not make payment method %s the gateway default: %s", method.pk, error)
        _record(
            case_ids=case_ids,
            action=PortalAction.PAYMENT_METHOD_UPDATED,
            actor=actor,
            reason=f"the gateway did not make it the default: {error}"[:500],
            details={"payment_method_id": method.pk},
        )


def portal_card_submit(
    *,
    link: PortalLink,
    customer: Customer,
    details: PaymentMethodDetails,
    gateway: PaymentGateway | None = None,
) -> PortalOutcome:
    """The portal's own card form (gateways without a hosted page, such as the simulated one)."""
    return portal_payment_method_confirmed(
        customer=customer,
        details=details,
        channel=link.channel,
        actor=portal_actor(link),
        gateway=gateway,
        retry_if_unchanged=True,
    )


def portal_pay_now(
    *, link: PortalLink, customer: Customer, gateway: PaymentGateway | None = None
) -> PortalOutcome:
    """Charge every open invoice in dunning on the card on file, once each; refused politely when pointless."""
    actor = portal_actor(link)
    cases = payable_cases(customer_id=customer.pk)
    if not cases:
        return PortalOutcome(OutcomeStatus.NOTHING_DUE)
    method = PaymentMethod.objects.filter(customer=customer, is_default=True).first()
    blocked = pay_now_blocked_reason(cases=cases, method=method)
    case_ids = [case.pk for case in cases]
    if blocked or method is None:
        _record(
            case_ids=case_ids,
            action=PortalAction.PAY_NOW,
            actor=actor,
            reason=f"pay now refused: {blocked}",
            details=_link_details(link),
        )
        return PortalOutcome(OutcomeStatus.BLOCKED, message=blocked)
    own_gateway = gateway is None
    gateway = gateway or get_gateway()
    attempts: list[PaymentAttempt] = []
    try:
        for case in cases:
            try:
                attempts.append(
                    attempt_charge(
                        invoice=case.invoice,
                        source=AttemptSource.PORTAL,
                        actor=actor,
                        payment_method=method,
                        channel=link.channel,
                        gateway=gateway,
                        customer_present=True,
                    )
                )
            except ChargeRefused:
                continue  # paid a moment ago, or a charge is in flight: never a second one
    finally:
        if own_gateway:
            gateway.close()
    outcome = _outcome(customer_id=customer.pk, attempts=attempts, method_id=method.pk)
    if outcome.status == OutcomeStatus.SAVED and not attempts:
        outcome = PortalOutcome(OutcomeStatus.PENDING)  # every invoice had a charge in flight
    _record(
        case_ids=case_ids,
        action=PortalAction.PAY_NOW,
        actor=actor,
        reason=_outcome_reason(outcome),
        details={**_link_details(link), "status": outcome.status, "payment_method_id": method.pk},
    )
    return outcome


def portal_hosted_page_start(
    *, link: PortalLink, customer: Customer, return_url: str, cancel_url: str, gateway: PaymentGateway
) -> SetupSession | None:
    """Open the gateway's page for a new method (Stripe Checkout in setup mode); None when it has none.

    The metadata lets the gateway's webhook credit the right channel (``portal_payment_method_confirmed``).
    """
    session = gateway.start_payment_method_update(
        customer_ref=customer.gateway_customer_id,
        return_url=return_url,
        cancel_url=cancel_url,
        metadata={"customer": customer.external_id, "channel": link.channel, "portal_source": link.source},
    )
    if session is not None:
        _record(
            case_ids=[case.pk for case in payable_cases(customer_id=customer.pk)],
            action=PortalAction.HOSTED_PAGE_OPENED,
            actor=portal_actor(link),
            reason="sent to the payment processor's page for a new payment method",
            details=_link_details(link),
        )
    return session


def portal_hosted_page_complete(
    *, link: PortalLink, customer: Customer, reference: str, gateway: PaymentGateway
) -> PortalOutcome:
    """Back from the gateway's page: save and charge the method it confirmed (once, even with the webhook)."""
    details = gateway.complete_payment_method_update(reference=reference)
    if details is None:
        _record(
            case_ids=[case.pk for case in payable_cases(customer_id=customer.pk)],
            action=PortalAction.HOSTED_PAGE_ABANDONED,
            actor=portal_actor(link),
            reason="came back from the payment processor's page without a new payment method",
            details=_link_details(link),
        )
        return PortalOutcome(OutcomeStatus.ABANDONED)
    return portal_payment_method_confirmed(
        customer=customer, details=details, channel=link.channel, actor=portal_actor(link), gateway=gateway
    )


# --- Links sent by email: on request, and by staff -------------------------------------------------------


def _enqueue_link(*, customer: Customer, source: str, now: datetime) -> int:
    link = portal_link_for(customer_id=customer.pk, source=source)
    created = notifications_enqueue(
        requests=[
            MessageRequest(
                customer_id=customer.pk,
                template_key="portal_link",
                case_ref=None,
                # A fresh step for every request: each one is a message of its own.
                step_ref=f"portal_link:{source}:{uuid.uuid4().hex}",
                context={"portal_url": link},
                # Asked for by the customer (or by staff on their behalf, on the phone): sent at once, even in
                # quiet hours, never capped; not a reminder, so payment does not stop it.
                customer_requested=True,
                only_while_unpaid=False,
            )
        ],
        now=now,
    )
    return len(created)


def portal_fresh_link_request(*, email: str) -> None:
    """The "send me a fresh link" form. The caller learns nothing: the lookup and the email happen in a
    task after the response, so the answer and its timing are the same for known and unknown addresses."""
    address = email.strip().lower()
    if not address:
        return
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task("dunning.tasks.portal_send_fresh_link", address))


def portal_fresh_link_send(*, email: str, now: datetime | None = None) -> int:
    """Email a fresh link to every customer whose billing address ``email`` is. Returns messages queued."""
    now = now or timezone.now()
    sent = 0
    actor = Actor.customer(label="customer (fresh link form)")
    for customer in customers_for_billing_address(email=email):
        with transaction.atomic():
            sent += _enqueue_link(customer=customer, source=LinkSource.REQUEST, now=now)
            audit_record(actor=actor, action="portal.fresh_link_sent", customer=customer)
            _record(
                case_ids=[case.pk for case in payable_cases(customer_id=customer.pk)],
                action=PortalAction.FRESH_LINK_SENT,
                actor=actor,
                reason="the customer asked for a fresh link: emailed to the billing contacts",
                details={"source": LinkSource.REQUEST, "channel": CHANNEL_BY_SOURCE[LinkSource.REQUEST]},
                now=now,
            )
    return sent


def portal_link_issue(*, customer: Customer, actor: Actor, invoice_id: int | None = None) -> str:
    """ "Copy portal link" in the admin: a new link for staff to pass on (a payment through it counts as
    the ``portal`` channel). Audited, because the link is a credential."""
    link = portal_link_for(customer_id=customer.pk, source=LinkSource.STAFF, invoice_id=invoice_id)
    with transaction.atomic():
        audit_record(actor=actor, action="portal.link_issued", customer=customer)
        _record(
            case_ids=[case.pk for case in payable_cases(customer_id=customer.pk)],
            action=PortalAction.LINK_COPIED,
            actor=actor,
            reason="staff made a portal link to pass on",
            details={"source": LinkSource.STAFF},
        )
    return link


def portal_link_email(*, customer: Customer, actor: Actor, now: datetime | None = None) -> int:
    """ "Email portal link" in the admin: a fresh link to the customer's billing contacts. Returns rows queued."""
    now = now or timezone.now()
    with transaction.atomic():
        queued = _enqueue_link(customer=customer, source=LinkSource.STAFF, now=now)
        audit_record(
            actor=actor, action="portal.link_emailed", customer=customer, details={"messages": queued}
        )
        _record(
            case_ids=[case.pk for case in payable_cases(customer_id=customer.pk)],
            action=PortalAction.LINK_EMAILED,
            actor=actor,
            reason="staff emailed a portal link to the billing contacts",
            details={"source": LinkSource.STAFF},
            now=now,
        )
    return queued


def portal_links_revoke(*, customer: Customer, actor: Actor) -> int:
    """Every portal link of the customer made until now stops working. Returns the new token version.

    Links made afterwards (the next reminder, "Email portal link") work. Emails already queued carry the
    old links: send a fresh one after revoking.
    """
    now = timezone.now()
    with transaction.atomic():
        access, _ = PortalAccess.objects.select_for_update().get_or_create(customer=customer)
        access.token_version += 1
        access.revoked_at = now
        access.revoked_by = actor.user
        access.revoked_by_label = actor.label[:150]
        access.save()
        audit_record(
            actor=actor,
            action="portal.links_revoked",
            customer=customer,
            details={"token_version": access.token_version},
        )
        _record(
            case_ids=[case.pk for case in payable_cases(customer_id=customer.pk)],
            action=PortalAction.LINKS_REVOKED,
            actor=actor,
            reason="staff revoked every portal link sent so far",
            details={"token_version": access.token_version},
            now=now,
        )
    return access.token_version


__all__ = [
    "OutcomeStatus",
    "PortalAction",
    "PortalOutcome",
    "portal_card_submit",
    "portal_fresh_link_request",
    "portal_fresh_link_send",
    "portal_hosted_page_complete",
    "portal_hosted_page_start",
    "portal_link_email",
    "portal_link_issue",
    "portal_links_revoke",
    "portal_pay_now",
    "portal_payment_method_confirmed",
    "portal_visit_record",
]
