"""Portal links: signed, expiring, revocable tokens bound to a customer (and optionally one invoice).

A token is ``signing.dumps({"c": customer id, "i": invoice id or None, "v": token version, "s": source})``
with a salt of its own, so no other signed value of this project (sessions, banner tokens) can pass for
one. Django's signer tries ``SECRET_KEY`` then each of ``SECRET_KEY_FALLBACKS``, so links survive a key
rotation for as long as the old key stays listed.

Reading a token never writes anything: links are not single-use, because mail scanners open them before
the customer does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import signing
from django.urls import get_script_prefix, get_urlconf, reverse

from dunning.models import INITIAL_TOKEN_VERSION, PortalAccess, RecoveryChannel

if TYPE_CHECKING:
    from dunning.models import DunningCase

SALT = "dunning.portal.v1"


class LinkSource(StrEnum):
    """What brought the customer to the portal: decides the recovery channel of a payment made there."""

    EMAIL = "email"  # a dunning email
    BANNER = "banner"  # the in-product banner
    STAFF = "staff"  # copied or emailed by staff
    REQUEST = "request"  # the customer asked for a fresh link


SOURCES: frozenset[str] = frozenset(source.value for source in LinkSource)
CHANNEL_BY_SOURCE: dict[str, str] = {
    LinkSource.EMAIL: RecoveryChannel.EMAIL_PORTAL,
    LinkSource.BANNER: RecoveryChannel.BANNER_PORTAL,
    LinkSource.STAFF: RecoveryChannel.PORTAL,
    LinkSource.REQUEST: RecoveryChannel.PORTAL,
}


class LinkProblem(StrEnum):
    INVALID = "invalid"  # malformed, tampered with, or signed with a key we no longer hold
    EXPIRED = "expired"
    REVOKED = "revoked"  # staff revoked the customer's links since this one was made


class PortalLinkError(Exception):
    def __init__(self, problem: LinkProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class PortalLink:
    """A verified token's contents."""

    customer_id: int
    invoice_id: int | None
    version: int
    source: str

    @property
    def channel(self) -> str:
        return CHANNEL_BY_SOURCE.get(self.source, RecoveryChannel.PORTAL)


def max_age_for(source: str) -> timedelta:
    """Banner links live longer: the banner keeps its link until its case's next banner step."""
    days = (
        settings.PORTAL_BANNER_LINK_MAX_AGE_DAYS
        if source == LinkSource.BANNER
        else settings.PORTAL_LINK_MAX_AGE_DAYS
    )
    return timedelta(days=days)


# Where a batch load leaves a customer's token version on the customer instance (see ``dunning.services
# .batch_load``): links made in that batch need no query of their own.
PRELOADED_TOKEN_VERSION = "preloaded_portal_token_version"


def token_versions(customer_ids: Iterable[int]) -> dict[int, int]:
    """Current token version per customer, in one query (customers never revoked are at version 1)."""
    ids = set(customer_ids)
    found = dict(PortalAccess.objects.filter(customer_id__in=ids).values_list("customer_id", "token_version"))
    return {customer_id: found.get(customer_id, INITIAL_TOKEN_VERSION) for customer_id in ids}


def portal_token_make(*, customer_id: int, invoice_id: int | None, source: str, version: int) -> str:
    if source not in SOURCES:
        raise ValueError(f"unknown portal link source {source!r}")
    payload = {"c": customer_id, "i": invoice_id, "v": version, "s": source}
    return signing.dumps(payload, salt=SALT, compress=True)


def portal_url(token: str, *, view: str = "portal:page") -> str:
    """The absolute address of a portal page, on ``PORTAL_BASE_URL`` (what customers can reach)."""
    if _URL_SAFE_TOKEN.fullmatch(token) is None:
        return f"{settings.PORTAL_BASE_URL.rstrip('/')}{reverse(view, args=[token])}"
    # A tick writes thousands of links; resolving the route once and filling the token in is the same
    # address (signed tokens only hold characters ``reverse`` leaves unquoted) at a fraction of the cost.
    head, tail = _around_token(view, get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}{head}{token}{tail}"


# Base64url and the signer's separator (and the leading dot of a compressed payload).
_URL_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.:-]+")
_TOKEN_MARKER = "portal-token-marker"


@lru_cache(maxsize=64)
def _around_token(view: str, urlconf: str, script_prefix: str) -> tuple[str, str]:
    """The parts of a view's path before and after its token (the arguments key the cache)."""
    head, marker, tail = reverse(view, args=[_TOKEN_MARKER], urlconf=urlconf).partition(_TOKEN_MARKER)
    if not marker:
        raise ValueError(f"{view} does not take a token")
    return head, tail


def portal_link_for(
    *, customer_id: int, source: str, invoice_id: int | None = None, version: int | None = None
) -> str:
    """A fresh absolute link for one customer. ``version`` saves the query when the caller has it."""
    if version is None:
        version = token_versions([customer_id])[customer_id]
    return portal_url(
        portal_token_make(customer_id=customer_id, invoice_id=invoice_id, source=source, version=version)
    )


def portal_links_for_customers(customer_ids: Sequence[int], *, source: str) -> dict[int, str]:
    """A link per customer (not bound to an invoice), for a batch in one query."""
    versions = token_versions(customer_ids)
    return {
        customer_id: portal_link_for(customer_id=customer_id, source=source, version=version)
        for customer_id, version in versions.items()
    }


def portal_links_for_cases(cases: Sequence[DunningCase], *, source: str) -> dict[int, str]:
    """A link per case (bound to its invoice), for a whole tick batch in one query."""
    if not cases:
        return {}
    versions = token_versions(case.customer_id for case in cases)
    return {
        case.pk: portal_link_for(
            customer_id=case.customer_id,
            invoice_id=case.invoice_id,
            source=source,
            version=versions[case.customer_id],
        )
        for case in cases
    }


def _loads(token: str, max_age: timedelta | None) -> dict[str, object]:
    payload = signing.loads(token, salt=SALT, max_age=max_age)
    if not isinstance(payload, dict):
        raise signing.BadSignature("not a portal payload")
    return payload


def portal_token_read(token: str) -> PortalLink:
    """Verify a token: signature (current key or a fallback), age for its source, and version.

    Raises :class:`PortalLinkError` saying why it is refused. Reads one row at most; writes nothing.
    """
    if not token or len(token) > 500:
        raise PortalLinkError(LinkProblem.INVALID)
    try:
        # The signature first, with no age limit: the age allowed depends on the source inside.
        payload = _loads(token, None)
        link = PortalLink(
            customer_id=int(payload["c"]),  # type: ignore[call-overload]
            invoice_id=int(payload["i"]) if payload.get("i") is not None else None,  # type: ignore[call-overload]
            version=int(payload["v"]),  # type: ignore[call-overload]
            source=str(payload["s"]),
        )
        _loads(token, max_age_for(link.source))
    except signing.SignatureExpired:
        raise PortalLinkError(LinkProblem.EXPIRED) from None
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise PortalLinkError(LinkProblem.INVALID) from None
    if link.source not in SOURCES:
        raise PortalLinkError(LinkProblem.INVALID)
    if link.version != token_versions([link.customer_id])[link.customer_id]:
        raise PortalLinkError(LinkProblem.REVOKED)
    return link
