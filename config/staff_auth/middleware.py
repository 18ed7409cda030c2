"""Every page under ``/admin/`` (the reports included): the second-factor gate, and the admin's CSP.

The gate: a signed-in staff member who must use MFA (``policy.mfa_required``) and has not verified this
session is sent to enrol or to type a code, whatever admin URL they asked for, GET or POST; only the MFA
pages and logout are open to them. The admin site refuses them too (``site.DunningAdminSite``).

The Content-Security-Policy, like the portal's: scripts only from our own files (no inline script, no
``eval``), nothing framed or framing, forms posted only to us. Styles allow ``'unsafe-inline'``: Django's
own admin templates carry a ``<style>`` block and ``style`` attributes, and the email previews are sandboxed
``srcdoc`` frames, which inherit this policy, of HTML that is styled inline as emails must be.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from config.staff_auth import policy


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def admin_content_security_policy() -> str:
    static = _origin(settings.STATIC_URL)  # static files on a CDN
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", static],
        "style-src": ["'self'", "'unsafe-inline'", static],
        # data: for the enrolment QR code; the logo's host for email previews.
        "img-src": ["'self'", "data:", static, _origin(settings.COMPANY_LOGO_URL)],
        "font-src": ["'self'", static],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
    return "; ".join(
        f"{name} {' '.join(dict.fromkeys(v for v in values if v))}" for name, values in directives.items()
    )


class StaffSecurityMiddleware:
    """After django-otp's middleware (which tells whether the session is verified)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        admin_root = reverse("admin:index")
        if not request.path.startswith(admin_root):
            return self.get_response(request)
        response = self._second_factor_gate(request) or self.get_response(request)
        response["Content-Security-Policy"] = admin_content_security_policy()
        return response

    def _second_factor_gate(self, request: HttpRequest) -> HttpResponse | None:
        user = request.user
        if not (user.is_authenticated and user.is_staff) or policy.admin_access_allowed(user):
            return None
        open_paths = {reverse(name) for name in ("admin:mfa_verify", "admin:mfa_enrol", "admin:logout")}
        if request.path in open_paths:
            return None
        step = "admin:mfa_verify" if policy.has_authenticator(user) else "admin:mfa_enrol"
        # Back to the page asked for afterwards; a POST is not replayed (its form is shown again).
        target = request.get_full_path() if request.method == "GET" else reverse("admin:index")
        return HttpResponseRedirect(f"{reverse(step)}?{urlencode({'next': target})}")
