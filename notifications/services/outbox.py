"""Queueing messages: the entry point the dunning engine calls, set-based for its batches.

``notifications_enqueue`` is called inside the dunning tick's transaction with up to about a thousand
requests. It issues a constant number of SQL statements whatever the number of requests (one read per
table it needs, one bulk insert, one read-back) and renders templates in Python. Dispatch happens after
commit, in django-q2 tasks.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from customers.actors import Actor
from customers.bulk import insert_rows, instances_from_values
from customers.models import Contact, ContactRole, Customer, Invoice, PaymentMethod
from customers.services import audit_record
from notifications import conf
from notifications.models import (
    Audience,
    Channel,
    MessageTemplate,
    Notification,
    NotificationStatus,
    ReasonCode,
    SuppressedAddress,
)
from notifications.models.outbox import CAP_COUNTED_STATUSES
from notifications.rendering import CompiledTemplate, TemplateRenderError, TemplateSource, customer_context
from notifications.timing import quiet_hours_end

CAP_WINDOW = timedelta(days=7)
# The columns recipients, quiet hours and the template context use (see ``rendering.customer_context``).
CUSTOMER_FIELDS = ("email", "name", "company", "locale", "time_zone")
INVOICE_FIELDS = ("number", "lines", "amount_due_minor", "amount_paid_minor", "currency")
METHOD_FIELDS = ("customer_id", "type", "brand", "last4", "exp_month", "exp_year")
# Rows handed to one dispatch task: small enough to spread over workers, large enough to share a connection.
DISPATCH_CHUNK = 100


@dataclass(frozen=True)
class MessageRequest:
    """One message the dunning engine wants sent (to one or more recipients of one customer).

    ``context`` carries the values dunning computes: ``decline_reason`` (str), ``access_affected_on``
    (date), ``portal_url`` (str) and ``case_day`` (int, days since the case opened, which decides the
    escalation to all contacts). Any other documented template variable may be given too.
    """

    customer_id: int
    template_key: str
    case_ref: int | None
    step_ref: str
    invoice_id: int | None = None
    context: Mapping[str, object] = field(default_factory=dict)
    bypass_cap: bool = False
    channel: str = Channel.EMAIL
    # The customer asked for this message (e.g. a fresh portal link): sent at once, even in quiet hours,
    # and neither capped nor counted towards the cap.
    customer_requested: bool = False
    # True (reminders): suppressed at send time once the invoice is paid/void/uncollectible or a send guard
    # says the case is closed, and cancelled by recovery. False for messages about the outcome itself,
    # which are sent after payment or closure: the recovered confirmation, win-back.
    only_while_unpaid: bool = True


def _locale_chain(locale: str) -> list[str]:
    """'pt-BR' -> ['pt-BR', 'pt', default]: the customer's locale, its language, then the default."""
    chain = [locale] if locale else []
    language = locale.replace("_", "-").split("-")[0] if locale else ""
    if language and language not in chain:
        chain.append(language)
    if conf.default_locale() not in chain:
        chain.append(conf.default_locale())
    return chain


class TemplateSet:
    """The templates one call needs, read in one query and compiled once each."""

    def __init__(self, keys: set[str]) -> None:
        self._rows = {(t.key, t.locale): t for t in MessageTemplate.objects.filter(key__in=keys)}
        self._compiled: dict[tuple[str, str], CompiledTemplate | TemplateRenderError] = {}

    def get(self, key: str, locale: str) -> tuple[CompiledTemplate, str]:
        """The compiled template for the best locale, and that locale. Raises TemplateRenderError."""
        for candidate in _locale_chain(locale):
            row = self._rows.get((key, candidate))
            if row is None:
                continue
            cached = self._compiled.get((key, candidate))
            if cached is None:
                try:
                    cached = CompiledTemplate(
                        TemplateSource(
                            key=key, subject=row.subject, body_text=row.body_text, body_html=row.body_html
                        )
                    )
                except TemplateRenderError as exc:
                    cached = exc
                self._compiled[(key, candidate)] = cached
            if isinstance(cached, TemplateRenderError):
                raise cached
            return cached, candidate
        raise TemplateRenderError(f"There is no template {key!r} (locale {locale or 'default'} or default).")


def formatting_locale(customer_locale: str, template_locale: str) -> str:
    """Amounts and dates follow the customer's locale when the template is in their language (fr-CA
    reading the fr template), and the template's otherwise, so an English fallback reads as English."""
    language = (customer_locale or "").replace("_", "-").split("-")[0].lower()
    return (
        customer_locale if language and language == template_locale.split("-")[0].lower() else template_locale
    )


def resolve_recipients(
    customer: Customer, contacts: Sequence[Contact], *, case_day: int | None
) -> list[tuple[str, str]]:
    """(email, name) pairs, lowercased and without duplicates.

    Billing contacts first; the customer's own email when there are none; any contact when there is
    neither. From the escalation day of the case, every contact and the customer's email.
    """
    escalate = case_day is not None and case_day >= conf.escalation_day()
    billing = [c for c in contacts if c.role == ContactRole.BILLING]
    own = [(customer.email, customer.name)] if customer.email else []
    if escalate:
        chosen = [(c.email, c.name) for c in contacts] + own
    elif billing:
        chosen = [(c.email, c.name) for c in billing]
    else:
        chosen = own or [(c.email, c.name) for c in contacts]
    seen: set[str] = set()
    result = []
    for email, name in chosen:
        address = (email or "").strip().lower()
        if address and address not in seen:
            seen.add(address)
            result.append((address, name or ""))
    return result


def _message_key(case_ref: int | None, step_ref: str) -> str:
    return f"{case_ref if case_ref is not None else '-'}:{step_ref}"[:130]


def _case_day(context: Mapping[str, object]) -> int | None:
    value = context.get("case_day")
    try:
        return int(value) if value is not None and value != "" else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def notifications_enqueue(*, requests: Sequence[MessageRequest], now: datetime) -> list[Notification]:
    """Queue messages for many customers at once; returns the rows this call created.

    For each request: resolve the recipients, skip addresses known to be undeliverable (row ``skipped``,
    reason ``undeliverable``), apply the rolling 7-day cap (row ``skipped``, reason ``capped``, unless
    ``bypass_cap``), delay for the customer's quiet hours (``send_after`` in the future), render the
    template, and insert idempotently: a row already present for (case, step, channel, recipient) is left
    alone, so a repeated call creates nothing. Due rows are dispatched by a task after commit.

    Runs inside the caller's transaction, in a constant number of statements (nine).
    """
    if not requests:
        return []
    for request in requests:
        if request.channel != Channel.EMAIL:
            raise ValueError(f"unsupported channel {request.channel!r}")
        if not request.step_ref:
            raise ValueError("step_ref must not be empty")
    customer_ids = {r.customer_id for r in requests}
    invoice_ids = {r.invoice_id for r in requests if r.invoice_id is not None}

    # Only what recipients, timing and rendering read: a tick's receipts are thousands of rows.
    customers = Customer.objects.only(*CUSTOMER_FIELDS).in_bulk(customer_ids)
    contacts: dict[int, list[Contact]] = defaultdict(list)
    for contact in (
        Contact.objects.filter(customer_id__in=customer_ids)
        .only("customer_id", "role", "email", "name")
        .order_by("customer_id", "role", "id")
    ):
        contacts[contact.customer_id].append(contact)
    invoices = Invoice.objects.only(*INVOICE_FIELDS).in_bulk(invoice_ids) if invoice_ids else {}
    methods = {
        m.customer_id: m
        for m in PaymentMethod.objects.filter(customer_id__in=customer_ids, is_default=True).only(
            *METHOD_FIELDS
        )
    }
    templates = TemplateSet({r.template_key for r in requests})

    # Every candidate address in one query against the suppression list.
    candidates: dict[int, list[tuple[str, str]]] = {}
    for index, request in enumerate(requests):
        customer = customers.get(request.customer_id)
        if customer is not None:
            candidates[index] = resolve_recipients(
                customer, contacts[customer.pk], case_day=_case_day(request.context)
            )
    addresses = {address for pairs in candidates.values() for address, _ in pairs}
    undeliverable = dict(SuppressedAddress.objects.filter(email__in=addresses).values_list("email", "reason"))

    # The cap: distinct messages per customer in the window, from one query. Known message keys let a
    # repeated request (a new contact since the first call) pass without using a second slot.
    window_start = now - CAP_WINDOW
    sent_messages: dict[int, set[str]] = defaultdict(set)
    for customer_id, key in (
        Notification.objects.filter(
            customer_id__in=customer_ids,
            audience=Audience.CUSTOMER,
            created_at__gt=window_start,
            status__in=CAP_COUNTED_STATUSES,
            customer_requested=False,
        )
        .values_list("customer_id", "message_key")
        .distinct()
    ):
        sent_messages[customer_id].add(key)
    cap = conf.cap_per_7_days()

    batch = uuid.uuid4()
    # Rows are plain dicts until they are inserted: a tick queues thousands, and model instances (built
    # only for the rows actually created, at the end) cost more than rendering them.
    defaults = {field.attname: field.get_default() for field in _INSERT_FIELDS}
    rows: list[dict[str, object]] = []
    for index, request in enumerate(requests):
        customer = customers.get(request.customer_id)
        if customer is None:
            raise ValueError(f"unknown customer id {request.customer_id}")
        invoice = invoices.get(request.invoice_id) if request.invoice_id is not None else None
        message_key = _message_key(request.case_ref, request.step_ref)
        base = {
            **defaults,
            "customer_id": customer.pk,
            "invoice_id": invoice.pk if invoice is not None else None,
            "case_ref": request.case_ref,
            "step_ref": request.step_ref[:100],
            "channel": request.channel,
            "audience": Audience.CUSTOMER,
            "template_key": request.template_key,
            "bypass_cap": request.bypass_cap,
            "customer_requested": request.customer_requested,
            "only_while_unpaid": request.only_while_unpaid,
            "message_key": message_key,
            "batch": batch,
            "created_at": now,
            "send_after": now,
        }
        recipients = candidates.get(index, [])
        if not recipients:
            rows.append(
                {
                    **base,
                    "recipient": "",
                    "status": NotificationStatus.SKIPPED,
                    "reason_code": ReasonCode.NO_RECIPIENT,
                    "status_reason": "The customer has no contact and no email address.",
                }
            )
            continue
        known = sent_messages[customer.pk]
        exempt = request.bypass_cap or request.customer_requested
        capped = not exempt and message_key not in known and len(known) >= cap
        deliverable = [pair for pair in recipients if pair[0] not in undeliverable]
        if deliverable and not capped and not request.customer_requested:
            known.add(message_key)  # later requests in this batch see it
        send_after = now if request.customer_requested else quiet_hours_end(now, customer.time_zone) or now
        for address, name in recipients:
            row = {**base, "recipient": address, "recipient_name": name[:200]}
            if address in undeliverable:
                row["status"] = NotificationStatus.SKIPPED
                row["reason_code"] = ReasonCode.UNDELIVERABLE
                row["status_reason"] = f"The address is undeliverable ({undeliverable[address]})."
            elif capped:
                row["status"] = NotificationStatus.SKIPPED
                row["reason_code"] = ReasonCode.CAPPED
                row["status_reason"] = (
                    f"The customer already had {len(known)} messages in the last 7 days (cap {cap})."
                )
            else:
                _render_into(row, templates, customer, invoice, methods.get(customer.pk), request.context)
                if row["status"] == NotificationStatus.QUEUED and send_after > now:
                    row["send_after"] = send_after
                    row["reason_code"] = ReasonCode.QUIET_HOURS
                    row["status_reason"] = "Delayed until the end of the customer's quiet hours."
            rows.append(row)

    # No savepoint of its own: the caller's transaction (the dunning step) is the unit, and the tick's
    # statement budget is tight. Outside a transaction, each statement commits and dispatch starts at once.
    created = _insert_new(rows)
    schedule_dispatch(
        [n.pk for n in created if n.status == NotificationStatus.QUEUED and n.send_after <= now]
    )
    return created


_INSERT_FIELDS = [f for f in Notification._meta.concrete_fields if not f.primary_key]
_INSERT_ATTNAMES = [f.attname for f in _INSERT_FIELDS]


def _insert_new(rows: list[dict[str, object]]) -> list[Notification]:
    """One INSERT … ON CONFLICT DO NOTHING for the batch; returns the rows actually created, with ids.

    Rows that already existed (a repeated request) come back from nothing and are left out. Built without
    Django's bulk_create, whose per-value preparation dominated enqueueing a tick's worth of messages.
    """
    identity = ("customer", "message_key", "channel", "recipient")
    values = [[row[name] for name in _INSERT_ATTNAMES] for row in rows]
    inserted = insert_rows(
        Notification,
        [f.name for f in _INSERT_FIELDS],
        values,
        on_conflict_do_nothing=True,
        returning=("id", *identity),
    )
    ids = {tuple(returned[1:]): returned[0] for returned in inserted}
    created = []
    for row, row_values in zip(rows, values, strict=True):
        pk = ids.get((row["customer_id"], row["message_key"], row["channel"], row["recipient"]))
        if pk is not None:
            created.append((*row_values, pk))
    notifications = instances_from_values(Notification, [*_INSERT_ATTNAMES, "id"], created)
    return sorted(notifications, key=lambda row: row.pk)


def _render_into(
    row: dict[str, object],
    templates: TemplateSet,
    customer: Customer,
    invoice: Invoice | None,
    method: PaymentMethod | None,
    extra: Mapping[str, object],
) -> None:
    try:
        compiled, locale = templates.get(str(row["template_key"]), customer.locale)
        context = customer_context(
            customer=customer,
            contact_name=str(row["recipient_name"]),
            invoice=invoice,
            payment_method=method,
            extra=extra,
            locale=formatting_locale(customer.locale, locale),
        )
        rendered = compiled.render(context, locale=locale)
    except TemplateRenderError as exc:
        # Recorded, not raised: one broken template must not stop the tick for every other customer.
        row.update(
            status=NotificationStatus.FAILED, reason_code=ReasonCode.RENDER_ERROR, status_reason=str(exc)
        )
        return
    row.update(
        locale=locale,
        subject=rendered.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
        status=NotificationStatus.QUEUED,
    )


def schedule_dispatch(notification_ids: Sequence[int]) -> None:
    """Send these rows after the current transaction commits, in django-q2 tasks."""
    if not notification_ids:
        return
    from django_q.tasks import async_task

    ids = list(notification_ids)

    def enqueue() -> None:
        for start in range(0, len(ids), DISPATCH_CHUNK):
            async_task("notifications.tasks.dispatch_notifications", ids[start : start + DISPATCH_CHUNK])

    transaction.on_commit(enqueue)


def notifications_cancel_for_cases(*, case_refs: Sequence[int], reason: str) -> int:
    """Queued reminders of these cases become ``suppressed`` (call it in the recovery's transaction).

    Messages queued with ``only_while_unpaid=False`` (the recovered confirmation) are kept.

    A message already being handed to the provider cannot be called back; the dispatcher's send guards
    close that window for everything still queued. Returns the number of rows suppressed.
    """
    if not case_refs:
        return 0
    return Notification.objects.filter(
        case_ref__in=list(case_refs), status=NotificationStatus.QUEUED, only_while_unpaid=True
    ).update(
        status=NotificationStatus.SUPPRESSED,
        reason_code=ReasonCode.CANCELLED,
        status_reason=reason[:1000],
        claim_token=None,
    )


def notifications_enqueue_staff(
    *,
    recipients: Sequence[tuple[str, str]],
    step_ref: str,
    subject: str,
    body_text: str,
    body_html: str,
    now: datetime,
    customer_id: int | None = None,
    case_ref: int | None = None,
    invoice_id: int | None = None,
) -> list[Notification]:
    """Queue an already rendered staff email to each (email, name); idempotent per step and recipient.

    Staff messages skip the cap and quiet hours, but not the list of undeliverable addresses.
    """
    addresses = {email.strip().lower() for email, _ in recipients if email}
    undeliverable = set(SuppressedAddress.objects.filter(email__in=addresses).values_list("email", flat=True))
    batch = uuid.uuid4()
    rows = []
    seen: set[str] = set()
    for email, name in recipients:
        address = (email or "").strip().lower()
        if not address or address in seen:
            continue
        seen.add(address)
        row = Notification(
            customer_id=customer_id,
            invoice_id=invoice_id,
            case_ref=case_ref,
            step_ref=step_ref[:100],
            channel=Channel.EMAIL,
            audience=Audience.STAFF,
            template_key="staff_escalation",
            recipient=address,
            recipient_name=name[:200],
            subject=subject,
            body_text=body_text,
            body_html=body_html,
            message_key=_message_key(case_ref, step_ref),
            batch=batch,
            created_at=now,
            send_after=now,
        )
        if address in undeliverable:
            row.status = NotificationStatus.SKIPPED
            row.reason_code = ReasonCode.UNDELIVERABLE
            row.status_reason = "The address is undeliverable."
        rows.append(row)
    with transaction.atomic():
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        created = list(Notification.objects.filter(batch=batch).order_by("id"))
        schedule_dispatch([n.pk for n in created if n.status == NotificationStatus.QUEUED])
    return created


def suppressed_address_add(
    *, email: str, reason: str, details: str = "", notification_id: int | None = None
) -> bool:
    """Mark an address undeliverable, and skip what is still queued for it.

    Returns False when it already was undeliverable (the first reason is kept).
    """
    address = email.strip().lower()
    if not address:
        return False
    with transaction.atomic():
        _, created = SuppressedAddress.objects.get_or_create(
            email=address,
            defaults={"reason": reason, "details": details[:2000], "notification_id": notification_id},
        )
        Notification.objects.filter(recipient=address, status=NotificationStatus.QUEUED).update(
            status=NotificationStatus.SKIPPED,
            reason_code=ReasonCode.UNDELIVERABLE,
            status_reason="The address became undeliverable before the message was sent.",
        )
    return created


def notifications_requeue(*, notification_ids: Sequence[int], actor: Actor) -> int:
    """Queue failed messages again (after a provider outage, say), from the admin. Rows whose template did
    not render, and rows whose bodies were purged or erased, have nothing to send and stay failed. Returns how
    many were queued."""
    now = timezone.now()
    with transaction.atomic():
        rows = (
            Notification.objects.filter(pk__in=list(notification_ids), status=NotificationStatus.FAILED)
            .exclude(reason_code=ReasonCode.RENDER_ERROR)
            .exclude(body_text="", body_html="")  # purged after the retention period, or erased
        )
        ids = list(rows.values_list("pk", flat=True))
        count = Notification.objects.filter(pk__in=ids, status=NotificationStatus.FAILED).update(
            status=NotificationStatus.QUEUED,
            attempts=0,
            send_after=now,
            reason_code="",
            status_reason=f"Queued again by {actor.label}.",
            claim_token=None,
        )
        if count:
            audit_record(
                actor=actor, action="notifications.requeued", details={"notification_ids": ids[:200]}
            )
            schedule_dispatch(ids)
    return count
