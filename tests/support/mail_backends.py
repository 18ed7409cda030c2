"""anymail's test backend, with per-recipient scripted responses.

anymail's own test backend answers a message with ``message.anymail_test_response`` when present; our
dispatcher builds its messages itself, so this subclass sets that attribute from a table keyed by
recipient before handing the message to anymail. Everything else (payload building, metadata, tags,
recipient-status checks, AnymailRecipientsRefused) is anymail's real code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from anymail.backends.test import EmailBackend as AnymailTestBackend


class ScriptedAnymailBackend(AnymailTestBackend):
    responses: ClassVar[dict[str, Any]] = {}

    def post_to_esp(self, payload: Any, message: Any) -> Any:
        for address in payload.recipient_emails:
            if address.lower() in self.responses:
                message.anymail_test_response = self.responses[address.lower()]
        return super().post_to_esp(payload, message)
