"""A logging filter that keeps portal tokens out of logs.

A portal link is a bearer credential: anyone holding it can see the customer's invoices and change their
payment method. Request logs (runserver's ``django.server``, ``django.request`` warnings, gunicorn's access
log when configured with this filter) would otherwise write it to disk and ship it to log collectors.
"""

from __future__ import annotations

import logging
import re

# Fixed portal routes that are not tokens; everything else after /portal/ is treated as one.
_NOT_TOKENS = ("link", "setup")
_STOP = "/?#\\s\"'"  # where a path segment ends in a log line
# /portal/ at the start of a path (after a space, a quote, "=" or a bracket), alone or after scheme://host,
# so that /static/portal/portal.css is left alone.
_PORTAL_PREFIX = r"((?:^|(?<=[\s\"'(=,]))(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s\"']+)?/portal/)"
PORTAL_TOKEN_IN_PATH = re.compile(
    rf"{_PORTAL_PREFIX}(?!(?:{'|'.join(_NOT_TOKENS)})(?:[{_STOP}]|$))[^{_STOP}]+"
)
REDACTED = r"\1[redacted]"


# Other short-lived bearer tokens that travel in a query string (the banner embed API's ?token=...).
TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"'#]+")


def redact_portal_tokens(text: str) -> str:
    """``"GET /portal/abc:def/pay/"`` -> ``"GET /portal/[redacted]/pay/"``; ``?token=x`` -> ``?token=[redacted]``."""
    return TOKEN_IN_QUERY.sub(r"\1[redacted]", PORTAL_TOKEN_IN_PATH.sub(REDACTED, text))


class RedactPortalTokens(logging.Filter):
    """Rewrites the record's message with tokens redacted. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the handler's problem, not ours
            return True
        redacted = redact_portal_tokens(message)
        if redacted != message:
            # The formatted message replaces msg/args, so no handler can re-format the original arguments.
            record.msg, record.args = redacted, None
        request = getattr(record, "request", None)
        if request is not None and PORTAL_TOKEN_IN_PATH.search(getattr(request, "path", "") or ""):
            # Error-report handlers (mail_admins) print the request; they get no request instead.
            record.request = None
        return True
