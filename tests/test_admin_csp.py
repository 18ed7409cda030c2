"""The admin's Content-Security-Policy: on every page under /admin/ (sign-in, MFA, lists, forms, reports),
scripts from our own files only. The Chromium check that the pages still work under it is in
test_staff_browser.py."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from config.staff_auth.middleware import admin_content_security_policy
from tests.factories import failed_invoice

pytestmark = pytest.mark.django_db


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_admin_policy(response) -> None:  # type: ignore[no-untyped-def]
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other host
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert policy["form-action"] == ["'self'"] and policy["base-uri"] == ["'none'"]
    assert "data:" in policy["img-src"]  # the enrolment QR code


def test_every_kind_of_admin_page_carries_the_policy(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice()
    urls = [
        reverse("admin:index"),
        reverse("admin:dunning_dunningcase_changelist"),
        reverse("admin:dunning_dunningcase_change", args=[case.pk]),
        reverse("admin:customers_customer_change", args=[invoice.customer_id]),
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"]),
        reverse("reporting:dashboard"),
        reverse("admin:mfa_backup_codes"),
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_admin_policy(response)


def test_sign_in_pages_and_refusals_carry_it_too(django_user_model) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    assert_admin_policy(client.get(reverse("admin:login")))
    assert_admin_policy(client.get(reverse("admin:index")))  # the redirect to the login
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(boss)
    assert_admin_policy(client.get(reverse("admin:mfa_enrol")))
    assert_admin_policy(client.get(reverse("admin:dunning_dunningcase_changelist")))  # sent to enrol


def test_a_static_host_and_the_logo_host_are_allowed_where_they_are_needed(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STATIC_URL = "https://static.example.net/assets/"
    settings.COMPANY_LOGO_URL = "https://cdn.acme.example/logo.png"
    policy = directives(admin_content_security_policy())
    assert policy["script-src"] == ["'self'", "https://static.example.net"]
    assert policy["img-src"] == ["'self'", "data:", "https://static.example.net", "https://cdn.acme.example"]


def test_pages_outside_the_admin_keep_their_own_headers(client) -> None:  # type: ignore[no-untyped-def]
    assert "Content-Security-Policy" not in client.get(reverse("healthz"))
    portal = client.get("/portal/not-a-token/")
    assert "'unsafe-inline'" not in portal["Content-Security-Policy"]  # the portal's stricter policy
