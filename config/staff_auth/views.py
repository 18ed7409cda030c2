"""The second sign-in step, under ``/admin/mfa/``: verify a code, enrol an authenticator, renew backup codes.

Thin: each view checks who is asking, calls one service and renders. Pages that show a secret (the QR code,
the backup codes) are never cached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django_otp import login as otp_login

from config.staff_auth import policy, services
from customers.actors import Actor
from dunning.portal.security import client_ip as portal_client_ip

LOW_ON_BACKUP_CODES = 3


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=40,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
                "size": 12,
            }
        ),
    )


def _next_url(request: HttpRequest) -> str:
    """Where to go after this step: the page the user asked for, if it is ours, else the admin index."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("admin:index")


def _with_next(name: str, request: HttpRequest) -> str:
    return f"{reverse(name)}?{urlencode({'next': _next_url(request)})}"


def _render(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    page = {
        **admin.site.each_context(request),
        # Nothing of the admin is shown before the second factor: no menus, no apps.
        "available_apps": [],
        "is_nav_sidebar_enabled": False,
        "next": _next_url(request),
        **context,
    }
    response = TemplateResponse(request, template, page, status=status)
    add_never_cache_headers(response)
    return response


def staff_step(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Signed-in active staff only (password already checked); anyone else goes to the admin login."""

    @csrf_protect
    def wrapped(request: HttpRequest) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            login = resolve_url("admin:login")
            return HttpResponseRedirect(f"{login}?next={reverse('admin:index')}")
        return view(request)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@staff_step
def verify(request: HttpRequest) -> HttpResponse:
    """Type the code from the authenticator app (or a backup code) to open the admin."""
    user = request.user
    if policy.is_verified(user) or not policy.mfa_required(user):
        return HttpResponseRedirect(_next_url(request))
    if not policy.has_authenticator(user):
        return HttpResponseRedirect(_with_next("admin:mfa_enrol", request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = services.mfa_verify(user=user, code=form.cleaned_data["code"], actor=Actor.staff(user))
        except services.MfaError as refusal:
            form.add_error("code", str(refusal))
        else:
            otp_login(request, device)
            request.session.cycle_key()
            left = services.backup_codes_left(user=user)
            if left <= LOW_ON_BACKUP_CODES:
                messages.warning(
                    request,
                    f"{left} backup code(s) left. Make new ones on the “Backup codes” page "
                    f"({reverse('admin:mfa_backup_codes')}).",
                )
            return HttpResponseRedirect(_next_url(request))
    context = {"title": "Two-step sign-in", "form": form, "issuer": settings.OTP_TOTP_ISSUER}
    return _render(request, "staff_auth/verify.html", context)


@staff_step
def enrol(request: HttpRequest) -> HttpResponse:
    """First sign-in: scan the QR code (or type the key) into an authenticator app, then type its code."""
    user = request.user
    if not policy.mfa_required(user):
        return HttpResponseRedirect(_next_url(request))
    if policy.has_authenticator(user):
        return HttpResponseRedirect(_with_next("admin:mfa_verify", request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = services.mfa_enrolment_confirm(
                user=user, code=form.cleaned_data["code"], actor=Actor.staff(user)
            )
        except services.MfaError as refusal:
            form.add_error("code", str(refusal))
        else:
            otp_login(request, device)
            request.session.cycle_key()
            return _render(
                request,
                "staff_auth/backup_codes.html",
                {"title": "Your backup codes", "codes": codes, "enrolled": True},
            )
    enrolment = services.mfa_enrolment_start(user=user)
    context = {
        "title": "Set up two-step sign-in",
        "form": form,
        "enrolment": enrolment,
        "issuer": settings.OTP_TOTP_ISSUER,
    }
    return _render(request, "staff_auth/enrol.html", context)


@staff_step
def backup_codes(request: HttpRequest) -> HttpResponse:
    """How many backup codes are left, and a button for a new set (shown once)."""
    user = request.user
    if not policy.is_verified(user):
        return HttpResponseRedirect(_with_next("admin:mfa_verify", request))
    if request.method == "POST":
        codes = services.mfa_backup_codes_renew(user=user, actor=Actor.staff(user))
        return _render(
            request, "staff_auth/backup_codes.html", {"title": "Your new backup codes", "codes": codes}
        )
    return _render(
        request,
        "staff_auth/backup_codes.html",
        {"title": "Backup codes", "left": services.backup_codes_left(user=user)},
    )


def login_client_ip(request: HttpRequest) -> str | None:
    """The address django-axes records and locks (``AXES_CLIENT_IP_CALLABLE``): the portal's reading of it
    (``PORTAL_TRUSTED_PROXIES``), or None when that is not an IP address (no REMOTE_ADDR, a unix socket)."""
    address = portal_client_ip(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def locked_out(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """django-axes' answer to a locked-out login (``AXES_LOCKOUT_CALLABLE``): 429, in the admin's look."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60) if settings.AXES_COOLOFF_TIME else 0
    response = _render(
        request,
        "staff_auth/locked_out.html",
        {"title": "Sign-in locked", "minutes": minutes, "limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    return response.render()  # answered from a middleware, where template responses are not rendered
