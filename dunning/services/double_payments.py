"""Double payments: refund one in a click (through the gateway), or dismiss it with a reason. Audited.

The flags themselves are written by ``dunning.services.outcomes`` when a charge succeeds on an invoice that
was already paid or closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus
from customers.money import format_money
from dunning.gateways import GatewayError, PaymentGateway, RefundRequest, get_gateway
from dunning.models import (
    CaseEventKind,
    DoublePayment,
    DoublePaymentReason,
    DoublePaymentStatus,
    PaymentAttempt,
)
from dunning.services import communication
from dunning.services.events import EventBuffer

if TYPE_CHECKING:
    from dunning.services.outcomes import Settlement

RESOLVABLE = (DoublePaymentStatus.OPEN, DoublePaymentStatus.REFUND_FAILED)


def refund_idempotency_key(flag_id: int) -> str:
    """One key per flag: a second click, or two staff members at once, refund it once."""
    return f"{settings.DUNNING_IDEMPOTENCY_PREFIX}-refund-{flag_id}"


def _resolve(
    flag: DoublePayment, *, actor: Actor, status: str, note: str, event_reason: str, **fields: object
) -> DoublePayment:
    now = timezone.now()
    with transaction.atomic():
        locked = DoublePayment.objects.select_for_update().get(pk=flag.pk)
        if locked.status not in RESOLVABLE:
            raise ValidationError(f"This double payment is already {locked.get_status_display().lower()}.")
        locked.status = status
        locked.resolution_note = note
        if status != DoublePaymentStatus.REFUND_FAILED:
            locked.resolved_at = now
            locked.resolved_by = actor.user  # type: ignore[assignment]
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
        if locked.case_id is not None:
            events = EventBuffer()
            events.add(
                case_id=locked.case_id,
                kind=CaseEventKind.DOUBLE_PAYMENT,
                actor=actor,
                at=now,
                reason=event_reason,
                details={"double_payment_id": locked.pk, "attempt_id": locked.attempt_id, "status": status},
            )
            events.flush()
    return locked


def double_payment_refund(
    *, flag: DoublePayment, actor: Actor, gateway: PaymentGateway | None = None
) -> DoublePayment:
    """Give the duplicate charge back through the gateway. A failed refund stays open to try again."""
    if flag.status not in RESOLVABLE:
        raise ValidationError(f"This double payment is already {flag.get_status_display().lower()}.")
    if not flag.gateway_reference:
        raise ValidationError(
            "The charge has no gateway reference to refund: refund it at the gateway by hand."
        )
    own = gateway is None
    gateway = gateway or get_gateway()
    amount = format_money(flag.amount_minor, flag.currency, "en")
    try:
        result = gateway.refund(
            RefundRequest(
                idempotency_key=refund_idempotency_key(flag.pk),
                gateway_reference=flag.gateway_reference,
                amount_minor=flag.amount_minor,
                currency=flag.currency,
            )
        )
    except GatewayError as error:
        return _resolve(
            flag,
            actor=actor,
            status=DoublePaymentStatus.REFUND_FAILED,
            note="",
            event_reason=f"refund of {amount} failed: {error}",
            refund_error=str(error)[:500],
        )
    finally:
        if own:
            gateway.close()
    return _resolve(
        flag,
        actor=actor,
        status=DoublePaymentStatus.REFUNDED,
        note="",
        event_reason=f"double payment refunded: {amount} (refund {result.reference})",
        refund_reference=result.reference,
        refund_error="",
    )


def double_payment_dismiss(*, flag: DoublePayment, actor: Actor, reason: str) -> DoublePayment:
    """Staff decided no refund is due (refunded elsewhere, credited to the next invoice…): say why."""
    if not reason.strip():
        raise ValidationError("Say why no refund is needed.")
    return _resolve(
        flag,
        actor=actor,
        status=DoublePaymentStatus.DISMISSED,
        note=reason.strip(),
        event_reason=f"double payment dismissed: {reason.strip()}",
    )


def double_payments_flag(
    *,
    duplicates: Sequence[Settlement],
    invoice_status: Mapping[int, str],
    actor: Actor,
    now: datetime,
    events: EventBuffer,
) -> None:
    """Save one flag per attempt whose money moved on an invoice already paid (or closed), note it on the
    case and tell staff. Called by ``settle_attempts`` for the attempts it settled as ``duplicate``."""
    if not duplicates:
        return
    customers = dict(
        Invoice.objects.filter(pk__in=[s.invoice_id for s in duplicates]).values_list("pk", "customer_id")
    )
    attempts = {a.pk: a for a in PaymentAttempt.objects.filter(pk__in=[s.attempt_id for s in duplicates])}
    flags = []
    for s in duplicates:
        attempt = attempts[s.attempt_id]
        status = invoice_status.get(s.invoice_id, "")
        flags.append(
            DoublePayment(
                attempt=attempt,
                invoice_id=s.invoice_id,
                customer_id=customers[s.invoice_id],
                case=s.case,
                reason=DoublePaymentReason.ALREADY_PAID
                if status == InvoiceStatus.PAID
                else DoublePaymentReason.INVOICE_CLOSED,
                amount_minor=attempt.amount_minor,
                currency=attempt.currency,
                gateway=attempt.gateway,
                gateway_reference=attempt.gateway_reference,
                detected_at=now,
                details={"invoice_status": status, "source": s.source},
            )
        )
    DoublePayment.objects.bulk_create(flags, ignore_conflicts=True)
    escalations = []
    for s in duplicates:
        if s.case is None:
            continue
        events.add(
            case_id=s.case.pk,
            kind=CaseEventKind.DOUBLE_PAYMENT,
            actor=actor,
            at=now,
            reason="the charge succeeded but the invoice was already closed: money moved twice, refund it",
            details={"attempt_id": s.attempt_id},
        )
        escalations.append(
            communication.StaffEscalation(
                customer_id=customers[s.invoice_id],
                case_id=s.case.pk,
                invoice_id=s.invoice_id,
                title=f"Double payment: attempt {s.attempt_id} charged a closed invoice",
                details="Open Dunning › Double payments to refund it in one click.",
            )
        )
    communication.escalate(escalations=escalations)
