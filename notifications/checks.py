"""System checks (``manage.py check``) for the email provider's tracking webhook, with stable ids.

- ``notifications.E001``: ``ANYMAIL_PROVIDER`` names no provider anymail has a tracking webhook for.
- ``notifications.E002``: the provider's webhook cannot start (a signing key it needs is missing, or its
  SDK is not installed); it would answer 500 to every event.
- ``notifications.W001``: a provider is set but ``ANYMAIL_WEBHOOK_SECRET`` is not: anyone could post events.
"""

from __future__ import annotations

import warnings
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security)
def check_tracking_webhook(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from notifications.tracking_webhooks import configured_provider, tracking_view_classes

    provider = configured_provider()
    if not provider:
        return []
    classes = tracking_view_classes()
    if provider not in classes:
        return [
            Error(
                f"ANYMAIL_PROVIDER={provider!r} is not a provider with a tracking webhook.",
                hint=f"Use one of: {', '.join(sorted(classes))}; or leave it empty.",
                id="notifications.E001",
            )
        ]
    found: list[CheckMessage] = []
    if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
        found.append(
            Warning(
                "ANYMAIL_PROVIDER is set but ANYMAIL_WEBHOOK_SECRET is not: anyone can post tracking events.",
                hint="Set ANYMAIL_WEBHOOK_SECRET=user:password and put the same in the provider's webhook URL.",
                id="notifications.W001",
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing secret is W001
        try:
            classes[provider]()
        except (ImproperlyConfigured, ImportError) as error:
            found.append(
                Error(
                    f"The {provider} tracking webhook cannot start: {error}",
                    hint="Add the provider's settings to ANYMAIL (see anymail's documentation) or install its extra.",
                    id="notifications.E002",
                )
            )
    return found
