"""A local mailbox for ``make run``: emails are saved as files and read in the admin, not printed.

The console backend prints every email as full MIME (thousands of lines in a few minutes), so the login
``make run`` prints scrolls away. In debug mode without ``EMAIL_URL`` (or with ``EMAIL_URL=mailbox://``)
every email is saved as one ``.eml`` file in ``LOCAL_MAILBOX_DIR`` (``var/mail/``), readable in the admin
("Sent mail (local)") and by any mail client. Only the newest ``KEEP`` files are kept.

The terminal gets one line per burst: emails saved within ``ANNOUNCE_AFTER_SECONDS`` of the first one are
counted together (the dispatcher opens a connection per message, so a batch of a hundred reminders is a
hundred ``send_messages`` calls), and the line is logged when the burst is over.

The backend is a real ``EmailBackend``: messages are serialised exactly as SMTP would send them, so the
page shows what a customer would receive.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage as ParsedEmail
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.utils import timezone

logger = logging.getLogger(__name__)

BACKEND = "notifications.local_mailbox.LocalMailboxBackend"
KEEP = 1000
ANNOUNCE_AFTER_SECONDS = 2.0
# Names this backend writes: a sortable timestamp and a random suffix. Nothing else is ever read.
NAME = re.compile(r"^\d{8}-\d{6}-\d{6}-[0-9a-f]{8}\.eml$")


def mailbox_in_use() -> bool:
    return settings.EMAIL_BACKEND == BACKEND


def mailbox_dir() -> Path:
    return Path(settings.LOCAL_MAILBOX_DIR)


class LocalMailboxBackend(BaseEmailBackend):
    """Saves each message as ``<LOCAL_MAILBOX_DIR>/<time>-<random>.eml``; one log line per batch."""

    def __init__(self, fail_silently: bool = False, directory: str | Path | None = None, **kwargs: Any):
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.directory = Path(directory) if directory else mailbox_dir()
        self._opened = False
        self._saved: list[EmailMessage] = []

    def open(self) -> bool:
        if self._opened:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        self._opened = True
        return True

    def close(self) -> None:
        if self._saved:
            _prune(self.directory)
            _BURST.add(self._saved)
        self._saved = []
        self._opened = False

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        opened_here = self.open()
        saved = 0
        try:
            for message in email_messages:
                try:
                    self._save(message)
                except OSError:
                    if not self.fail_silently:
                        raise
                    continue
                saved += 1
        finally:
            if opened_here:
                self.close()
        return saved

    def _save(self, message: EmailMessage) -> None:
        name = f"{timezone.now():%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / f".{name}.part"
        partial.write_bytes(message.message().as_bytes(linesep="\r\n"))
        partial.replace(self.directory / name)  # readers never see half a file
        self._saved.append(message)


class _Burst:
    """Emails saved by this process and not announced yet; one log line when no more came for a moment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.last = ("", "")
        self.timer: threading.Timer | None = None

    def add(self, saved: list[EmailMessage]) -> None:
        with self.lock:
            self.count += len(saved)
            self.last = (", ".join(saved[-1].to), str(saved[-1].subject))
            if self.timer is None:
                self.timer = threading.Timer(ANNOUNCE_AFTER_SECONDS, self.flush)
                self.timer.daemon = True
                self.timer.start()

    def flush(self) -> None:
        with self.lock:
            count, (to, subject) = self.count, self.last
            self.count, self.timer = 0, None
        if count:
            _announce(count, to, subject)


def _announce(count: int, to: str, subject: str) -> None:
    from django.urls import reverse

    url = settings.PORTAL_BASE_URL.rstrip("/") + reverse("admin:notifications_localmail_changelist")
    logger.info(
        "%d email(s) saved to the local mailbox (the last to %s: %s). Read them at %s",
        count,
        to[:60],
        subject[:80],
        url,
    )


_BURST = _Burst()
atexit.register(_BURST.flush)  # a command that sends one email and exits still says so


def _prune(directory: Path) -> None:
    names = sorted(p.name for p in directory.iterdir() if NAME.match(p.name))
    for name in names[:-KEEP]:
        (directory / name).unlink(missing_ok=True)


# --- Reading the mailbox (the admin page) -------------------------------------------------------------


@dataclass(frozen=True)
class MailSummary:
    name: str
    subject: str
    sender: str
    to: str
    date: datetime | None


@dataclass(frozen=True)
class MailMessage:
    summary: MailSummary
    headers: list[tuple[str, str]]
    text: str
    html: str


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _summary(name: str, headers: Any) -> MailSummary:
    return MailSummary(
        name=name,
        subject=str(headers.get("Subject", "")),
        sender=str(headers.get("From", "")),
        to=str(headers.get("To", "")),
        date=_date(headers.get("Date")),
    )


def mailbox_messages(*, limit: int = 200) -> tuple[list[MailSummary], int]:
    """The newest ``limit`` messages (headers only), and how many the mailbox holds."""
    directory = mailbox_dir()
    if not directory.is_dir():
        return [], 0
    names = sorted((p.name for p in directory.iterdir() if NAME.match(p.name)), reverse=True)
    parser = BytesHeaderParser(policy=policy.default)
    summaries = []
    for name in names[:limit]:
        try:
            with (directory / name).open("rb") as handle:
                summaries.append(_summary(name, parser.parse(handle)))
        except FileNotFoundError:  # pruned meanwhile
            continue
    return summaries, len(names)


def mailbox_message(name: str) -> MailMessage | None:
    """One message with its text and HTML parts; None for an unknown or malformed name."""
    if not NAME.match(name):
        return None
    path = mailbox_dir() / name
    try:
        parsed: ParsedEmail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())  # type: ignore[assignment]
    except FileNotFoundError:
        return None
    text_part = parsed.get_body(preferencelist=("plain",))
    html_part = parsed.get_body(preferencelist=("html",))
    shown = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "List-Unsubscribe")
    return MailMessage(
        summary=_summary(name, parsed),
        headers=[(key, str(parsed[key])) for key in shown if parsed[key]],
        text=text_part.get_content() if text_part is not None else "",
        html=html_part.get_content() if html_part is not None else "",
    )
