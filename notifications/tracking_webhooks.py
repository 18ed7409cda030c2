"""``POST /anymail/<provider>/tracking/``: the email provider's tracking webhook, for the configured provider
only (``ANYMAIL_PROVIDER``). Thin: anymail's own view checks the basic auth and parses the body; its
``tracking`` signal reaches ``notifications.services.tracking``.

- Any other provider, or any provider while ``ANYMAIL_PROVIDER`` is empty, answers 404: an unconfigured
  provider's view would answer 500 (no signing key, a missing SDK) to anyone who posts to it.
- A wrong or missing password answers 400 (anymail's rule) and is logged as a warning, not as a security
  error that would email staff.
- A body the provider's parser cannot read (``[]`` to Postmark, missing fields), or events holding text no
  database column takes (NUL, lone surrogates, an over-long address), answers 400 with a JSON error: the
  provider does not retry a 400, and no error email goes to staff.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent
from anymail.webhooks.base import AnymailCoreWebhookView
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from customers.validators import json_text_problem

logger = logging.getLogger(__name__)
# Longest address an EmailField (and the SMTP standard) takes.
MAX_ADDRESS_LENGTH = 254
# The event fields that reach our tables.
STORED_FIELDS = ("recipient", "message_id", "event_id", "description", "mta_response", "reject_reason")


class BadTrackingBody(Exception):
    """The body is authenticated but not something the provider sends."""


@functools.cache
def tracking_view_classes() -> dict[str, type[AnymailCoreWebhookView]]:
    """Every provider anymail has a tracking webhook for, by the name in its URL (``postmark``, …)."""
    from anymail import urls

    classes: dict[str, type[AnymailCoreWebhookView]] = {}
    for pattern in urls.urlpatterns:
        name = getattr(pattern, "name", None) or ""
        if name.endswith("_tracking_webhook"):
            classes[name.removesuffix("_tracking_webhook")] = pattern.callback.view_class  # type: ignore[attr-defined]
    return classes


def configured_provider() -> str:
    return str(getattr(settings, "ANYMAIL_PROVIDER", "") or "").strip().lower()


def _event_problem(event: AnymailTrackingEvent) -> str | None:
    values = {name: getattr(event, name, None) for name in STORED_FIELDS}
    values["metadata"] = event.metadata
    values["tags"] = event.tags
    for name, value in values.items():
        if value is None:
            continue
        if not isinstance(value, str | dict | list):
            value = str(value)
        if problem := json_text_problem(value):
            return f"the event's {name} {problem}"
    if len(str(event.recipient or "")) > MAX_ADDRESS_LENGTH:
        return "the event's recipient is not an email address (too long)"
    return None


@functools.cache
def _guarded_view(view_class: type[AnymailCoreWebhookView]) -> Any:
    """anymail's view, answering 400 instead of 500 to a body it cannot parse."""

    class Guarded(view_class):  # type: ignore[valid-type,misc]
        def parse_events(self, request: HttpRequest) -> list[AnymailTrackingEvent]:
            try:
                events = list(super().parse_events(request))
            except AnymailWebhookValidationFailure:
                raise
            except (ValueError, TypeError, LookupError, AttributeError) as error:
                raise BadTrackingBody(
                    f"not a {self.esp_name} tracking payload ({type(error).__name__})"
                ) from error
            for event in events:
                if problem := _event_problem(event):
                    raise BadTrackingBody(problem)
            return events

        def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return super().post(request, *args, **kwargs)
            except BadTrackingBody as error:
                return JsonResponse({"error": str(error)}, status=400)
            except AnymailWebhookValidationFailure as error:
                # Django would log it as a security error (and email staff); a wrong password is routine.
                logger.warning("%s tracking webhook refused: %s", self.esp_name, error)
                return JsonResponse({"error": "authentication failed"}, status=400)

    Guarded.__name__ = f"Guarded{view_class.__name__}"
    return Guarded.as_view()


@csrf_exempt  # the provider authenticates with basic auth (ANYMAIL_WEBHOOK_SECRET), never with a cookie
def tracking_webhook(request: HttpRequest, provider: str) -> HttpResponse:
    view_class = tracking_view_classes().get(provider)
    if view_class is None or provider != configured_provider():
        return JsonResponse({"error": "No tracking webhook is configured at this address."}, status=404)
    return _guarded_view(view_class)(request)
