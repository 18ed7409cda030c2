"""Sending queued emails: claim, check again, send once, record.

1. Claim the rows with a conditional UPDATE (``queued`` → ``sending``, with a fresh claim token). A retried
   or duplicated task finds nothing left to claim, so a message is never sent twice.
2. Check again, at send time: the invoice must still be open (paid, void or uncollectible suppresses the
   row), every registered send guard must agree (``notifications.guards``; dunning checks its case is
   still open), the address must still be deliverable, and it must not be the customer's quiet hours.
3. Send through Django's email API (so any anymail provider, SMTP or the console works), one message at a
   time on one connection, and record the outcome of each row as soon as it is known.

Transient errors (SMTP 4xx, connection problems, provider 5xx and 429) put the row back in the queue with
backoff, up to ``NOTIFICATIONS_MAX_SEND_ATTEMPTS``. Permanent ones (recipient refused, invalid request)
mark it ``failed`` with the reason. A row left in ``sending`` by a crashed worker is marked ``failed``
(reason ``interrupted``) rather than retried: it may have gone out, and a duplicate is worse.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formataddr, make_msgid, parseaddr

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import F
from django.utils import timezone

from customers.models import FINAL_INVOICE_STATUSES
from notifications import conf, guards
from notifications.models import Audience, Notification, NotificationStatus, ReasonCode, SuppressedAddress
from notifications.timing import email_retry_delay, quiet_hours_end

logger = logging.getLogger(__name__)

# A row still ``sending`` after this long belongs to a worker that died.
STALE_SENDING_AFTER = timedelta(minutes=15)
DUE_BATCH = 200


class SendError(Exception):
    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # anymail's __str__ needs a response object that some errors lack
        text = " ".join(str(a) for a in exc.args)
    return f"{type(exc).__name__}: {text}"[:1000] if text else type(exc).__name__


def _smtp_code_transient(code: int | None) -> bool:
    return code is None or code < 500


def classify_send_error(exc: BaseException) -> SendError:
    """Transient (retry later) or permanent (give up now), with a reason for staff."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        transient = any(_smtp_code_transient(code) for code in codes)
        details = "; ".join(
            f"{rcpt}: {code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
            for rcpt, (code, msg) in exc.recipients.items()
        )
        return SendError(f"Recipient refused: {details}"[:1000], transient=transient)
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data refused, auth…
        message = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        transient = _smtp_code_transient(exc.smtp_code) or isinstance(exc, smtplib.SMTPAuthenticationError)
        return SendError(f"SMTP {exc.smtp_code}: {message}"[:1000], transient=transient)
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError | socket.timeout | OSError):
        return SendError(_describe(exc), transient=True)
    if isinstance(exc, AnymailRecipientsRefused | AnymailInvalidAddress):
        return SendError(_describe(exc), transient=False)
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        transient = status is None or status == 429 or status >= 500
        return SendError(_describe(exc), transient=transient)
    # Anything else (a misconfigured backend, a bug): keep the message and retry with backoff.
    return SendError(_describe(exc), transient=True)


def _sender_domain() -> str:
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rpartition("@")[2] or "localhost"


def build_email(notification: Notification) -> EmailMultiAlternatives:
    """The email for one row: text and HTML parts, our Message-ID, and the row id in anymail metadata
    so that tracking webhooks find their way back to the row."""
    message = EmailMultiAlternatives(
        subject=notification.subject,
        body=notification.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[formataddr((notification.recipient_name, notification.recipient))],
        headers={
            "Message-ID": notification.message_id,
            "X-Dunning-Notification": str(notification.pk),
        },
    )
    if notification.body_html:
        message.attach_alternative(notification.body_html, "text/html")
    # anymail reads these attributes from any EmailMessage; other backends ignore them.
    message.metadata = {"notification_id": str(notification.pk)}  # type: ignore[attr-defined]
    message.tags = [notification.template_key]  # type: ignore[attr-defined]
    return message


def _esp_message_id(message: EmailMultiAlternatives) -> str:
    status = getattr(message, "anymail_status", None)
    if status is None or status.message_id is None:
        return ""
    if isinstance(status.message_id, set):  # one id per recipient; we send to one recipient
        return str(next(iter(status.message_id), "")) if len(status.message_id) == 1 else ""
    return str(status.message_id)


def _refused_by_provider(message: EmailMultiAlternatives) -> str:
    """anymail reports per-recipient statuses; 'rejected'/'invalid' without an exception is still a refusal."""
    status = getattr(message, "anymail_status", None)
    if status is None or not status.recipients:
        return ""
    refused = [
        f"{email}: {recipient.status}"
        for email, recipient in status.recipients.items()
        if recipient.status in ("rejected", "invalid")
    ]
    return "; ".join(refused)


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    suppressed: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    delayed: int = 0


def _claim(*, notification_ids: Sequence[int] | None, now: datetime, limit: int) -> list[Notification]:
    token = uuid.uuid4()
    due = Notification.objects.filter(status=NotificationStatus.QUEUED, send_after__lte=now)
    if notification_ids is not None:
        candidates = due.filter(pk__in=list(notification_ids))
    else:
        candidates = due.filter(
            pk__in=list(due.order_by("send_after", "id").values_list("pk", flat=True)[:limit])
        )
    # The status condition is re-checked by the UPDATE itself: of two workers, only one gets a row.
    claimed = candidates.update(status=NotificationStatus.SENDING, claim_token=token, last_attempt_at=now)
    if not claimed:
        return []
    return list(
        Notification.objects.filter(claim_token=token, status=NotificationStatus.SENDING)
        .select_related("customer", "invoice")
        .order_by("id")
    )


def _finish(notification: Notification, **changes: object) -> None:
    """Record the outcome, only while we still hold the claim."""
    Notification.objects.filter(
        pk=notification.pk, claim_token=notification.claim_token, status=NotificationStatus.SENDING
    ).update(claim_token=None, **changes)
    for name, value in changes.items():
        if not hasattr(value, "resolve_expression"):
            setattr(notification, name, value)


def _pre_send_reason(notification: Notification, undeliverable: set[str]) -> tuple[str, str, str] | None:
    """(status, reason code, text) when the row must not be sent now; None when it may go."""
    invoice = notification.invoice
    if notification.only_while_unpaid and invoice is not None and invoice.status in FINAL_INVOICE_STATUSES:
        return (
            NotificationStatus.SUPPRESSED,
            ReasonCode.INVOICE_CLOSED,
            f"Invoice {invoice.number} is {invoice.status}; nothing is sent after payment.",
        )
    if notification.recipient in undeliverable:
        return NotificationStatus.SKIPPED, ReasonCode.UNDELIVERABLE, "The address became undeliverable."
    return None


def notifications_dispatch(
    *, notification_ids: Sequence[int] | None = None, now: datetime | None = None, limit: int = DUE_BATCH
) -> DispatchResult:
    """Send queued, due rows: the given ids, or the oldest ``limit`` due rows when ids is None."""
    now = now or timezone.now()
    result = DispatchResult()
    rows = _claim(notification_ids=notification_ids, now=now, limit=limit)
    result.claimed = len(rows)
    if not rows:
        return result
    undeliverable = set(
        SuppressedAddress.objects.filter(email__in={n.recipient for n in rows}).values_list(
            "email", flat=True
        )
    )
    try:
        guards.prefetch_guards(rows)
    except Exception:
        logger.exception("a send-guard prefetch failed; guards will run row by row")
    connection = get_connection(fail_silently=False)
    sent_rows: list[Notification] = []
    try:
        for notification in rows:
            outcome = _dispatch_one(notification, connection, undeliverable, now)
            setattr(result, outcome, getattr(result, outcome) + 1)
            if outcome == "sent":
                sent_rows.append(notification)
    finally:
        try:
            connection.close()
        except Exception:  # closing a broken SMTP session must not hide what was recorded
            logger.warning("closing the email connection failed", exc_info=True)
    if sent_rows:
        _emit_sent_events(sent_rows, now)
    return result


def _respects_quiet_hours(notification: Notification) -> bool:
    return (
        notification.audience == Audience.CUSTOMER
        and not notification.customer_requested
        and notification.customer is not None
    )


def _dispatch_one(
    notification: Notification, connection: object, undeliverable: set[str], now: datetime
) -> str:
    stop = _pre_send_reason(notification, undeliverable)
    if stop is None and notification.audience == Audience.CUSTOMER and notification.only_while_unpaid:
        try:
            reason = guards.check_guards(notification)
        except Exception as exc:
            logger.exception("send guard failed for notification %s", notification.pk)
            notification.attempts += 1
            return _retry_or_fail(
                notification, SendError(f"A send guard failed: {_describe(exc)}", transient=True), now
            )
        if reason:
            stop = (NotificationStatus.SUPPRESSED, ReasonCode.GUARD, reason)
    if stop is not None:
        status, code, text = stop
        _finish(notification, status=status, reason_code=code, status_reason=text[:1000])
        return "suppressed" if status == NotificationStatus.SUPPRESSED else "skipped"
    if _respects_quiet_hours(notification):
        resume = quiet_hours_end(now, notification.customer.time_zone)  # type: ignore[union-attr]
        if resume is not None:
            _finish(
                notification,
                status=NotificationStatus.QUEUED,
                send_after=resume,
                reason_code=ReasonCode.QUIET_HOURS,
                status_reason="Delayed until the end of the customer's quiet hours.",
            )
            return "delayed"
    if not notification.message_id:
        # Fixed at the first attempt and reused by retries, so providers and clients can deduplicate.
        notification.message_id = make_msgid(idstring=f"n{notification.pk}", domain=_sender_domain())
    message = build_email(notification)
    attempts = notification.attempts + 1
    try:
        connection.send_messages([message])  # type: ignore[attr-defined]
    except Exception as exc:
        error = classify_send_error(exc)
        _reset_connection(connection)
        notification.attempts = attempts
        return _retry_or_fail(notification, error, now)
    refused = _refused_by_provider(message)
    if refused:
        notification.attempts = attempts
        return _retry_or_fail(
            notification, SendError(f"Refused by the provider: {refused}", transient=False), now
        )
    _finish(
        notification,
        status=NotificationStatus.SENT,
        sent_at=timezone.now(),
        attempts=attempts,
        reason_code="",
        status_reason="",
        message_id=notification.message_id,
        esp_message_id=_esp_message_id(message)[:255],
    )
    return "sent"


def _reset_connection(connection: object) -> None:
    """After an error, the next message starts on a fresh connection (an SMTP session may be half-dead)."""
    with contextlib.suppress(Exception):
        connection.close()  # type: ignore[attr-defined]
    if hasattr(connection, "connection"):
        connection.connection = None


def _retry_or_fail(notification: Notification, error: SendError, now: datetime) -> str:
    attempts = notification.attempts
    if not error.transient:
        _finish(
            notification,
            status=NotificationStatus.FAILED,
            attempts=attempts,
            reason_code=ReasonCode.PERMANENT_ERROR,
            status_reason=error.reason,
            message_id=notification.message_id,
        )
        return "failed"
    if attempts >= conf.max_send_attempts():
        _finish(
            notification,
            status=NotificationStatus.FAILED,
            attempts=attempts,
            reason_code=ReasonCode.GAVE_UP,
            status_reason=f"Gave up after {attempts} attempts. Last error: {error.reason}"[:1000],
            message_id=notification.message_id,
        )
        return "failed"
    retry_at = now + email_retry_delay(max(attempts, 1))
    if _respects_quiet_hours(notification):
        retry_at = quiet_hours_end(retry_at, notification.customer.time_zone) or retry_at  # type: ignore[union-attr]
    _finish(
        notification,
        status=NotificationStatus.QUEUED,
        attempts=attempts,
        send_after=retry_at,
        reason_code=ReasonCode.RETRYING,
        status_reason=f"Attempt {attempts} failed, retrying: {error.reason}"[:1000],
        message_id=notification.message_id,
    )
    return "retrying"


def _emit_sent_events(rows: Sequence[Notification], now: datetime) -> None:
    from notifications.services.webhooks import WebhookEvent, webhooks_emit

    events = [
        WebhookEvent(
            event_type="notification.sent",
            event_id=f"notification.sent:{row.pk}",
            payload={
                "notification_id": row.pk,
                "customer": row.customer.external_id if row.customer is not None else None,
                "case_ref": row.case_ref,
                "step_ref": row.step_ref,
                "template": row.template_key,
                "channel": row.channel,
                "invoice_number": row.invoice.number if row.invoice is not None else None,
            },
            occurred_at=row.sent_at or now,
        )
        for row in rows
        if row.audience == Audience.CUSTOMER
    ]
    if events:
        webhooks_emit(events=events)


def notifications_reap_interrupted(*, now: datetime | None = None) -> int:
    """Rows stuck in ``sending`` (their worker died) become ``failed``, never re-sent automatically."""
    now = now or timezone.now()
    return Notification.objects.filter(
        status=NotificationStatus.SENDING, last_attempt_at__lt=now - STALE_SENDING_AFTER
    ).update(
        status=NotificationStatus.FAILED,
        reason_code=ReasonCode.INTERRUPTED,
        status_reason="The worker stopped while sending: the message may or may not have gone out, so it "
        "is not retried automatically.",
        claim_token=None,
        attempts=F("attempts") + 1,
    )


def notifications_dispatch_due(*, max_seconds: float = 50.0) -> DispatchResult:
    """The periodic sweep: reap interrupted rows, then send due rows batch after batch until none is left
    or ``max_seconds`` is spent (the next run, a minute later, continues)."""
    notifications_reap_interrupted()
    total = DispatchResult()
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        result = notifications_dispatch(notification_ids=None)
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(result, name))
        if result.claimed < DUE_BATCH:
            break
    return total
