"""What happens around case changes: access (entitlement), messages, banners, webhooks, staff escalation.

All of it is set-based and runs in the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from customers.actors import Actor
from customers.models import EntitlementState, InvoiceStatus
from customers.money import format_money
from customers.services import (
    AuditBuffer,
    customers_lock,
    customers_set_entitlement_many,
    invoices_close_many,
)
from dunning.models import CaseEventKind, CaseState, DunningCase, RecoveryChannel, StepAction
from dunning.portal.tokens import LinkSource, portal_link_for, token_versions
from dunning.schedule import step_due_at
from dunning.services import communication
from dunning.services.events import EventBuffer

if TYPE_CHECKING:
    from customers.models import Customer

# Dunning moves access forward only; recovery is the one way back.
ENTITLEMENT_RANK = {
    EntitlementState.ACTIVE: 0,
    EntitlementState.PAST_DUE: 1,
    EntitlementState.DEGRADED: 2,
    EntitlementState.SUSPENDED: 3,
    EntitlementState.CANCELLED: 4,
}
STEP_ENTITLEMENT = {
    StepAction.DEGRADE: EntitlementState.DEGRADED,
    StepAction.SUSPEND: EntitlementState.SUSPENDED,
    StepAction.CANCEL: EntitlementState.CANCELLED,
}
# Steps that show the customer a portal link, and the link's source (the recovery channel it credits).
LINKED_ACTIONS = {StepAction.EMAIL: LinkSource.EMAIL, StepAction.BANNER: LinkSource.BANNER}
PORTAL_CHANNELS = frozenset(
    {RecoveryChannel.EMAIL_PORTAL, RecoveryChannel.BANNER_PORTAL, RecoveryChannel.PORTAL}
)
CLOSE_WEBHOOKS = {
    CaseState.RECOVERED: "payment.recovered",
    CaseState.EXHAUSTED: "case.exhausted",
    CaseState.HANDED_OFF: "case.handed_off",
}


def portal_url_for(case: DunningCase, *, source: str = LinkSource.EMAIL, version: int | None = None) -> str:
    """The customer's signed, expiring link to the payment page, bound to the case's invoice.

    ``source`` (email, banner, staff) says where the link is shown, so that a payment made through it is
    credited to that channel. Batches pass ``version`` (see ``token_versions``) to save a query per case.
    """
    return portal_link_for(
        customer_id=case.customer_id, invoice_id=case.invoice_id, source=source, version=version
    )


def access_affected_on(case: DunningCase) -> date | None:
    """The local date of the case's first step that takes access away (degrade, suspend or cancel)."""
    version = case.policy_version
    for step in version.steps:
        if step["action"] in STEP_ENTITLEMENT:
            due = step_due_at(
                opened_at=case.opened_at,
                day_offset=step["day_offset"],
                local_hour=step.get("local_hour"),
                time_zone=case.customer.time_zone,
                shift=timedelta(seconds=case.schedule_shift_seconds),
            )
            return due.date()
    return None


def case_payload(case: DunningCase) -> dict[str, Any]:
    customer: Customer = case.customer
    return {
        "case_id": case.pk,
        "state": case.state,
        "customer": customer.external_id,
        "invoice": case.invoice.number,
        "amount_minor": case.amount_minor,
        "currency": case.currency,
        "decline_code": case.decline_code,
        "decline_category": case.decline_category,
        "recovery_channel": case.recovery_channel,
    }


def entitlement_move(
    *,
    customers: Sequence[Customer],
    state: str,
    actor: Actor,
    now: datetime,
    reason: str,
    audit: AuditBuffer | None = None,
) -> dict[int, str]:
    """Move access forward to ``state`` (never back), emitting ``customer.entitlement_changed``."""
    lower = [s for s, rank in ENTITLEMENT_RANK.items() if rank < ENTITLEMENT_RANK[state]]
    moved = customers_set_entitlement_many(
        customer_ids=list({c.pk for c in customers}),
        state=state,
        actor=actor,
        reason=reason,
        now=now,
        only_from=lower,
        audit=audit,
    )
    _emit_entitlement_webhooks(moved, state, now, {c.pk: c.external_id for c in customers})
    return moved


def _emit_entitlement_webhooks(
    moved: dict[int, str], state: str, now: datetime, external_ids: dict[int, str]
) -> None:
    if not moved:
        return
    communication.emit_webhooks(
        events=[
            communication.OutboundEvent(
                event_type="customer.entitlement_changed",
                event_id=f"customer.entitlement_changed:{customer_id}:{state}:{now.timestamp():.0f}",
                payload={"customer": external_ids[customer_id], "from": previous, "to": state},
                occurred_at=now,
            )
            for customer_id, previous in moved.items()
        ]
    )


def case_opened(*, case: DunningCase, actor: Actor, now: datetime) -> None:
    entitlement_move(
        customers=[case.customer],
        state=EntitlementState.PAST_DUE,
        actor=actor,
        now=now,
        reason="payment failed",
    )
    communication.emit_webhooks(
        events=[
            communication.OutboundEvent(
                event_type="case.opened",
                event_id=f"case.opened:{case.pk}",
                payload=case_payload(case),
                occurred_at=now,
            )
        ]
    )


def cases_closed(
    *,
    cases: Sequence[DunningCase],
    actor: Actor,
    now: datetime,
    events: EventBuffer,
    more_webhooks: Sequence[communication.OutboundEvent] = (),
) -> None:
    """Withdraw messages and banners of closed cases (not exhausted ones: their invoice is still unpaid);
    restore access after recoveries; tell the product.

    ``more_webhooks`` are the caller's own events for the same batch, sent in the same call.
    """
    if not cases:
        communication.emit_webhooks(events=more_webhooks)
        return
    # An exhausted case still has an unpaid invoice: what the last steps queued (the suspension notice)
    # must still reach the customer. Paid, void and handed-off cases withdraw what is queued.
    communication.withdraw_for_cases(
        case_ids=[case.pk for case in cases if case.state != CaseState.EXHAUSTED], reason="case closed"
    )
    recovered = [case for case in cases if case.state == CaseState.RECOVERED]
    versions = token_versions(case.customer_id for case in recovered)
    # The thank-you goes out because the invoice was paid: it is not a reminder, so payment does not stop it.
    communication.send_messages(
        intents=[
            communication.MessageIntent(
                customer_id=case.customer_id,
                case_id=case.pk,
                step_ref="recovered",
                template_key="recovered",
                invoice_id=case.invoice_id,
                context={
                    "portal_url": portal_url_for(case, version=versions[case.customer_id]),
                    # What was received: the invoice's remaining amount is nothing by now.
                    "amount": format_money(
                        case.recovered_amount_minor or case.amount_minor, case.currency, case.customer.locale
                    ),
                },
                bypass_cap=True,
                only_while_unpaid=False,
                # A customer who just paid in the portal expects the receipt now, even at 23:00.
                customer_requested=case.recovery_channel in PORTAL_CHANNELS,
            )
            for case in recovered
        ],
        now=now,
    )
    recovered_customers = {case.customer_id for case in cases if case.state == CaseState.RECOVERED}
    if recovered_customers:
        # Two transactions recovering a customer's last two cases at once would each see the other's case
        # still open and neither would restore access. With the customer locked first, the second waits
        # for the first to commit and then sees its case recovered.
        customers_lock(customer_ids=recovered_customers)
        still_dunning = set(
            DunningCase.objects.filter(
                customer_id__in=recovered_customers, state__in=[CaseState.OPEN, CaseState.PAUSED]
            ).values_list("customer_id", flat=True)
        )
        restore = list(recovered_customers - still_dunning)
        moved = customers_set_entitlement_many(
            customer_ids=restore,
            state=EntitlementState.ACTIVE,
            actor=actor,
            reason="invoice paid",
            now=now,
            # A cancelled subscription is a business decision; paying an old invoice does not undo it.
            only_from=[EntitlementState.PAST_DUE, EntitlementState.DEGRADED, EntitlementState.SUSPENDED],
            audit=events.audit,
        )
        _emit_entitlement_webhooks(
            moved,
            EntitlementState.ACTIVE,
            now,
            {case.customer_id: case.customer.external_id for case in cases},
        )
        for case in cases:
            if case.customer_id in moved:
                events.add(
                    case_id=case.pk,
                    kind=CaseEventKind.ENTITLEMENT,
                    actor=actor,
                    at=now,
                    reason="access restored",
                    details={"from": moved[case.customer_id], "to": EntitlementState.ACTIVE},
                )
    communication.emit_webhooks(
        events=[
            communication.OutboundEvent(
                event_type=CLOSE_WEBHOOKS[case.state],
                event_id=f"{CLOSE_WEBHOOKS[case.state]}:{case.pk}",
                payload=case_payload(case),
                occurred_at=now,
            )
            for case in cases
            if case.state in CLOSE_WEBHOOKS
        ]
        + list(more_webhooks)
    )


def run_steps(
    *,
    steps: Sequence[tuple[DunningCase, int, dict[str, Any]]],
    decline_messages: dict[int, str],
    actor: Actor,
    now: datetime,
    events: EventBuffer,
) -> dict[str, int]:
    """Carry out non-retry steps for many cases at once. Returns how many of each action ran.

    ``steps`` holds (case, step index, frozen step). ``decline_messages`` maps case id to the decline's
    customer message. Each step writes a "step done" event.
    """
    counts: dict[str, int] = defaultdict(int)
    messages: list[communication.MessageIntent] = []
    banners: list[communication.BannerIntent] = []
    webhooks: list[communication.OutboundEvent] = []
    escalations: list[communication.StaffEscalation] = []
    access: dict[str, list[Customer]] = defaultdict(list)
    uncollectible: list[int] = []
    # One query for every link of the batch; emails and banners get links of their own source.
    versions = token_versions(case.customer_id for case, _, step in steps if step["action"] in LINKED_ACTIONS)
    for case, index, step in steps:
        action = step["action"]
        counts[action] += 1
        step_ref = f"v{case.policy_version_id}:{index}"
        context = {
            "amount": format_money(case.amount_minor, case.currency, case.customer.locale),
            "decline_reason": decline_messages.get(case.pk, ""),
            "access_affected_on": access_affected_on(case),
            "case_day": (now - case.opened_at).days,
        }
        if action in LINKED_ACTIONS:
            context["portal_url"] = portal_url_for(
                case, source=LINKED_ACTIONS[action], version=versions[case.customer_id]
            )
        if action == StepAction.EMAIL:
            messages.append(
                communication.MessageIntent(
                    customer_id=case.customer_id,
                    case_id=case.pk,
                    step_ref=step_ref,
                    template_key=step["template_key"],
                    invoice_id=case.invoice_id,
                    context=context,
                    bypass_cap=step["template_key"] == "final_notice",
                )
            )
        elif action == StepAction.BANNER:
            banners.append(
                communication.BannerIntent(
                    customer_id=case.customer_id,
                    case_id=case.pk,
                    invoice_id=case.invoice_id,
                    template_key=step["template_key"],
                    severity="critical" if step["day_offset"] >= 7 else "warning",
                    context=context,
                )
            )
        elif action == StepAction.WEBHOOK:
            webhooks.append(
                communication.OutboundEvent(
                    event_type="case.step",
                    event_id=f"case.step:{case.pk}:{step_ref}",
                    payload={
                        **case_payload(case),
                        "step": step["template_key"] or f"day_{step['day_offset']}",
                    },
                    occurred_at=now,
                )
            )
        elif action == StepAction.ESCALATE:
            escalations.append(
                communication.StaffEscalation(
                    customer_id=case.customer_id,
                    case_id=case.pk,
                    invoice_id=case.invoice_id,
                    title=f"Dunning escalation: invoice {case.invoice.number}",
                    details=f"Day {context['case_day']} of the case; last decline {case.decline_code or 'n/a'}.",
                )
            )
        elif action in STEP_ENTITLEMENT:
            access[STEP_ENTITLEMENT[action]].append(case.customer)
        elif action == StepAction.MARK_UNCOLLECTIBLE:
            uncollectible.append(case.invoice_id)
        events.add(
            case_id=case.pk,
            kind=CaseEventKind.STEP_DONE,
            actor=actor,
            at=now,
            step_index=index,
            reason=action,
            details={"template": step.get("template_key", "")} if step.get("template_key") else {},
        )
    communication.send_messages(intents=messages, now=now)
    communication.show_banners(intents=banners)
    communication.emit_webhooks(events=webhooks)
    communication.escalate(escalations=escalations)
    for state, customers in access.items():
        entitlement_move(
            customers=customers, state=state, actor=actor, now=now, reason="dunning step", audit=events.audit
        )
    invoices_close_many(
        invoice_ids=uncollectible,
        status=InvoiceStatus.UNCOLLECTIBLE,
        actor=actor,
        reason="dunning step",
        now=now,
        audit=events.audit,
    )
    return counts
