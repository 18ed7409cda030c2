"""System checks (``manage.py check``) for the payment gateway settings, with stable ids.

- ``dunning.E001``: ``PAYMENT_GATEWAY=stripe`` without ``STRIPE_SECRET_KEY``.
- ``dunning.E002``: ``PAYMENT_GATEWAY=stripe`` without ``STRIPE_WEBHOOK_SECRET``.
- ``dunning.E003`` (``check --deploy`` only): the simulated gateway with ``DEBUG`` off, i.e. a
  production that would never really charge anybody.
- ``dunning.E004``: a live Stripe key (``sk_live_``/``rk_live_``) with ``DEBUG`` on.
- ``dunning.E005``: ``STRIPE_RETRY_OWNER`` is neither ``dunning`` nor ``stripe``.
- ``dunning.E006``: ``STRIPE_SECRET_KEY`` is a publishable key (``pk_``), which cannot charge.
- ``dunning.W001``: ``STRIPE_API_VERSION`` differs from the version the installed SDK was built for.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

RETRY_OWNERS = ("dunning", "stripe")
LIVE_PREFIXES = ("sk_live_", "rk_live_")


@register(Tags.security)
def check_payment_gateway(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    key: str = settings.STRIPE_SECRET_KEY
    uses_stripe = settings.PAYMENT_GATEWAY == "stripe"
    if uses_stripe and not key:
        errors.append(
            Error(
                "PAYMENT_GATEWAY is stripe but STRIPE_SECRET_KEY is not set.",
                hint="Set STRIPE_SECRET_KEY to the secret (sk_…) or restricted (rk_…) key of the account.",
                id="dunning.E001",
            )
        )
    if uses_stripe and not [secret for secret in settings.STRIPE_WEBHOOK_SECRET if secret.strip()]:
        errors.append(
            Error(
                "PAYMENT_GATEWAY is stripe but STRIPE_WEBHOOK_SECRET is not set: every webhook would be refused.",
                hint="Copy the endpoint's signing secret (whsec_…) from Stripe; comma-separate two during a rotation.",
                id="dunning.E002",
            )
        )
    if key.startswith(LIVE_PREFIXES) and settings.DEBUG:
        errors.append(
            Error(
                "A live Stripe key is configured while DEBUG is on.",
                hint="Use a test key (sk_test_…) for local work, or switch DJANGO_DEBUG off.",
                id="dunning.E004",
            )
        )
    if settings.STRIPE_RETRY_OWNER not in RETRY_OWNERS:
        errors.append(
            Error(
                f"STRIPE_RETRY_OWNER is {settings.STRIPE_RETRY_OWNER!r}.",
                hint="Use dunning (this application retries; Smart Retries off) or stripe (Smart Retries on).",
                id="dunning.E005",
            )
        )
    if key.startswith("pk_"):
        errors.append(
            Error(
                "STRIPE_SECRET_KEY holds a publishable key (pk_…), which cannot charge.",
                hint="Use the secret key (sk_…) or a restricted key (rk_…).",
                id="dunning.E006",
            )
        )
    if uses_stripe:
        from dunning.gateways.stripe import SDK_API_VERSION

        if settings.STRIPE_API_VERSION != SDK_API_VERSION:
            errors.append(
                Warning(
                    f"STRIPE_API_VERSION is {settings.STRIPE_API_VERSION} but the installed stripe SDK "
                    f"was built for {SDK_API_VERSION}.",
                    hint="Payload fields may differ from what the code reads: align them after reading "
                    "Stripe's changelog.",
                    id="dunning.W001",
                )
            )
    return errors


@register(Tags.security, deploy=True)
def check_gateway_in_production(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.PAYMENT_GATEWAY == "simulated" and not settings.DEBUG:
        return [
            Error(
                "The simulated payment gateway is configured with DEBUG off: nothing would really be charged.",
                hint="Set PAYMENT_GATEWAY=stripe (or your gateway's dotted path) in production.",
                id="dunning.E003",
            )
        ]
    return []
