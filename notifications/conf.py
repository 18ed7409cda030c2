"""Settings of the notifications app, read at call time so that tests can override them."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings


def cap_per_7_days() -> int:
    return int(settings.NOTIFICATIONS_CAP_PER_7_DAYS)


def quiet_hours() -> tuple[int, int]:
    return int(settings.NOTIFICATIONS_QUIET_HOURS_START), int(settings.NOTIFICATIONS_QUIET_HOURS_END)


def escalation_day() -> int:
    return int(settings.NOTIFICATIONS_ESCALATION_DAY)


def default_locale() -> str:
    return str(settings.NOTIFICATIONS_DEFAULT_LOCALE)


def max_send_attempts() -> int:
    return int(settings.NOTIFICATIONS_MAX_SEND_ATTEMPTS)


def staff_group() -> str:
    return str(settings.NOTIFICATIONS_STAFF_GROUP)


def banner_api_max_age() -> int:
    return int(settings.BANNER_API_MAX_AGE)


def banner_token_ttl() -> int:
    return int(settings.BANNER_TOKEN_TTL_SECONDS)


def banner_embed_allowed_origins() -> list[str]:
    return list(settings.BANNER_EMBED_ALLOWED_ORIGINS)


def webhooks_allow_http_hosts() -> list[str]:
    return [host.lower() for host in settings.WEBHOOKS_ALLOW_HTTP_HOSTS]


def webhooks_allow_private_addresses() -> bool:
    return bool(settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES)


def webhooks_timeout() -> float:
    return float(settings.WEBHOOKS_TIMEOUT_SECONDS)


def webhooks_disable_after() -> timedelta:
    return timedelta(hours=int(settings.WEBHOOKS_DISABLE_AFTER_HOURS))
