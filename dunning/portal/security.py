"""Response headers and rate limits of the portal's pages.

The headers apply to portal views only (the admin keeps Django's defaults):
- ``Referrer-Policy: no-referrer``: the token in the address never leaks to the logo's host or the gateway;
- ``Cache-Control: no-store``: no shared or browser cache keeps a customer's invoices;
- ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'``: no clickjacking of the payment buttons;
- a strict ``Content-Security-Policy``: our own scripts and styles only (no inline code at all), images
  from us and the configured logo's origin, forms posted to us and, with Stripe, to Stripe Checkout.

Rate limits are fixed-window counters in the default cache, keyed by a hash (never the raw token or
address), so that a leaked link or a script cannot hammer the payment buttons or the fresh-link form.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import decorator_from_middleware
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from dunning.gateways import BUILTIN_GATEWAYS

# Where Stripe Checkout lives: the "Update payment method" form redirects there, and browsers apply
# form-action to the redirect too.
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def hosted_page_origins() -> list[str]:
    """Origins of the configured gateway's hosted pages: Stripe's, or a custom gateway class's
    ``hosted_page_origins`` attribute."""
    origins = [STRIPE_CHECKOUT_ORIGIN] if settings.PAYMENT_GATEWAY == "stripe" else []
    path = BUILTIN_GATEWAYS.get(settings.PAYMENT_GATEWAY, settings.PAYMENT_GATEWAY)
    try:
        gateway_class = import_string(path)
    except ImportError:
        return origins
    return origins + [o for o in getattr(gateway_class, "hosted_page_origins", ()) if o not in origins]


def content_security_policy() -> str:
    static = _origin(settings.STATIC_URL)  # static files on a CDN
    images = ["'self'", "data:", _origin(settings.COMPANY_LOGO_URL), static]
    code = ["'self'", static]
    directives = {
        "default-src": ["'self'"],
        "script-src": code,
        "style-src": code,
        "img-src": images,
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'", *hosted_page_origins()],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
    return "; ".join(
        f"{name} {' '.join(dict.fromkeys(v for v in values if v))}" for name, values in directives.items()
    )


def apply_portal_headers(response: HttpResponse) -> HttpResponse:
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    response["X-Frame-Options"] = "DENY"
    response["Content-Security-Policy"] = content_security_policy()
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cross-Origin-Opener-Policy"] = "same-origin"
    return response


def portal_headers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a portal view: every answer, errors included, carries the portal's headers."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return apply_portal_headers(view(request, *args, **kwargs))

    return wrapped


class PortalCsrfViewMiddleware(CsrfViewMiddleware):
    """Django's CSRF protection for the portal's forms, knowing what ``no-referrer`` does to them.

    Under ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` with every form post, even to the
    page's own origin (Fetch standard, "append a request Origin header"), and no Referer, so Django's
    origin check refuses every portal form. A ``null`` origin is accepted when the browser's Fetch metadata
    says the post came from our own origin (``Sec-Fetch-Site: same-origin``), or when the browser sends
    no Fetch metadata at all (Safari before 16.4), where the masked CSRF token, checked next as always, is
    the defence, as Django does for posts without an Origin. A cross-site post (a sandboxed frame also
    sends ``null``) says ``cross-site`` and is refused.
    """

    def _origin_verified(self, request: HttpRequest) -> bool:
        if request.META.get("HTTP_ORIGIN") == "null":
            return request.META.get("HTTP_SEC_FETCH_SITE", "same-origin") == "same-origin"
        return super()._origin_verified(request)


def portal_csrf_protect(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For the portal's POST views, in place of the project-wide CSRF middleware (see above)."""
    return csrf_exempt(decorator_from_middleware(PortalCsrfViewMiddleware)(view))


logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind ``PORTAL_TRUSTED_PROXIES`` proxies the address the
    outermost trusted proxy saw (the N-th X-Forwarded-For entry from the right; the left part is
    whatever the client claimed and cannot be trusted)."""
    proxies = settings.PORTAL_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


@dataclass(frozen=True)
class Limit:
    bucket: str
    key: str
    limit: int


def rate_limited(limits: list[Limit], *, window: int | None = None) -> int:
    """Count one hit against each limit. Returns 0 when allowed, else the seconds until the window ends.

    Fixed windows: a burst at a window's edge may get up to twice the limit, which is fine for abuse
    control and costs two cache operations per limit.
    """
    window = window or settings.PORTAL_RATE_LIMIT_WINDOW_SECONDS
    now = time.time()
    slot = int(now // window)
    exceeded = False
    for item in limits:
        digest = hashlib.sha256(f"{item.bucket}:{item.key}".encode()).hexdigest()[:32]
        cache_key = f"portal:rl:{item.bucket}:{digest}:{slot}"
        try:
            count = _count_hit(cache_key, window)
        except Exception:  # noqa: BLE001 - the cache (Redis) is down
            # Customers must still be able to pay: the links are signed, so the limits are abuse control,
            # not what keeps the portal safe. Counting resumes with the cache; operators see the error.
            logger.exception("portal rate limits: the cache is unreachable; letting the request through")
            return 0
        exceeded = exceeded or count > item.limit
    return int(window - (now % window)) + 1 if exceeded else 0


def _count_hit(cache_key: str, window: int) -> int:
    cache.add(cache_key, 0, window + 5)
    try:
        return int(cache.incr(cache_key))
    except ValueError:  # evicted between add and incr
        cache.set(cache_key, 1, window + 5)
        return 1
