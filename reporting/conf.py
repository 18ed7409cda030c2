"""Settings of the reporting app, read at call time so that tests can override them."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def weekly_digest_enabled() -> bool:
    return bool(settings.REPORTING_WEEKLY_DIGEST)


def digest_recipients() -> list[str]:
    return [address.strip() for address in settings.REPORTING_DIGEST_RECIPIENTS if address.strip()]


def staff_group() -> str:
    return str(settings.NOTIFICATIONS_STAFF_GROUP)


def reporting_currency() -> str:
    return str(settings.REPORTING_CURRENCY).strip().upper()


def exchange_rates() -> dict[str, Decimal]:
    """Units of the reporting currency per one unit (major) of each other currency, e.g. {"EUR": 1.08}."""
    rates: dict[str, Decimal] = {}
    for code, value in dict(settings.REPORTING_EXCHANGE_RATES).items():
        try:
            rate = Decimal(str(value))
        except InvalidOperation:
            raise ImproperlyConfigured(
                f"REPORTING_EXCHANGE_RATES: {code}={value!r} is not a number"
            ) from None
        if rate <= 0:
            raise ImproperlyConfigured(f"REPORTING_EXCHANGE_RATES: {code} must be positive")
        rates[str(code).strip().upper()] = rate
    currency = reporting_currency()
    if currency:
        rates[currency] = Decimal(1)
    return rates
