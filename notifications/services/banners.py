"""In-app banners, the API keys that read them, and short-lived tokens for the browser snippet."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.utils import timezone

from customers.actors import Actor
from customers.services import audit_record
from customers.validators import external_id_problem
from notifications import conf
from notifications.models import ApiKey, Banner, BannerSeverity

API_KEY_PREFIX = "dbk"
# last_used_at is written at most once per this interval per key, so reads stay reads.
LAST_USED_RESOLUTION = timedelta(minutes=1)
EMBED_TOKEN_SALT = "notifications.banner-embed"


@dataclass(frozen=True)
class BannerRequest:
    customer_id: int
    case_ref: int
    invoice_id: int | None
    message: str
    severity: str
    cta_url: str
    cta_label: str = "Update payment method"


def banners_show(*, requests: Sequence[BannerRequest]) -> int:
    """Show (or update) one banner per case, in one statement. Returns the number of banners written."""
    latest: dict[int, BannerRequest] = {}
    for request in requests:
        if request.severity not in BannerSeverity.values:
            raise ValueError(f"unknown banner severity {request.severity!r}")
        if request.case_ref is None:
            raise ValueError("a banner belongs to a case: case_ref is required")
        latest[request.case_ref] = request  # one row per case in the statement (the last request wins)
    if not latest:
        return 0
    now = timezone.now()
    rows = [
        Banner(
            customer_id=r.customer_id,
            case_ref=r.case_ref,
            invoice_id=r.invoice_id,
            message=r.message,
            severity=r.severity,
            cta_url=r.cta_url[:500],
            cta_label=r.cta_label[:80],
            active=True,
            cleared_at=None,
            created_at=now,
            updated_at=now,
        )
        for r in latest.values()
    ]
    Banner.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["case_ref"],
        update_fields=[
            "customer",
            "invoice",
            "message",
            "severity",
            "cta_url",
            "cta_label",
            "active",
            "cleared_at",
            "updated_at",
        ],
    )
    return len(rows)


def banners_clear(*, case_refs: Sequence[int]) -> int:
    """Clear the banners of these cases (on recovery, in the same transaction). Returns how many."""
    if not case_refs:
        return 0
    now = timezone.now()
    return Banner.objects.filter(case_ref__in=list(case_refs), active=True).update(
        active=False, cleared_at=now, updated_at=now
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_key_create(*, name: str, actor: Actor) -> tuple[ApiKey, str]:
    """A new key and its token. The token is returned once and never stored: only its SHA-256 is."""
    prefix = secrets.token_hex(4)
    token = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        name=name[:100], prefix=prefix, hashed_key=_hash(token), created_by=actor.user
    )
    audit_record(actor=actor, action="api_key.created", details={"api_key_id": key.pk, "name": key.name})
    return key, token


def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> bool:
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if updated:
        audit_record(
            actor=actor, action="api_key.revoked", details={"api_key_id": api_key.pk, "name": api_key.name}
        )
    return bool(updated)


def api_key_authenticate(*, token: str, now: datetime | None = None) -> ApiKey | None:
    """The active key for this token, or None. One indexed read; a write at most once a minute."""
    if not token.startswith(f"{API_KEY_PREFIX}_") or len(token) > 200:
        return None
    key = ApiKey.objects.filter(hashed_key=_hash(token), revoked_at__isnull=True).first()
    if key is None:
        return None
    now = now or timezone.now()
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def banner_token_for(*, external_id: str, ttl_seconds: int | None = None) -> str:
    """A signed, short-lived token naming one customer, for the browser snippet.

    The product's backend gets it from ``POST /api/v1/banners/token/`` (API key) or, when it runs in this
    Django project, from this function directly. It reveals nothing but the external id it carries.
    """
    ttl = conf.banner_token_ttl() if ttl_seconds is None else ttl_seconds
    if problem := external_id_problem(external_id):
        raise ValueError(f"external_id {problem}")
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise ValueError(f"ttl_seconds must be a whole number of seconds, not {ttl!r}")
    return signing.dumps({"c": external_id, "e": int(time.time()) + ttl}, salt=EMBED_TOKEN_SALT)


def banner_token_read(*, token: str) -> str | None:
    """The external id in a valid, unexpired token, or None."""
    try:
        payload = signing.loads(token, salt=EMBED_TOKEN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
        return None
    expires = payload.get("e", 0)
    if isinstance(expires, bool) or not isinstance(expires, int) or expires < time.time():
        return None
    return payload["c"]
