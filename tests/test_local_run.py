"""``make run`` locally: links follow the served address, the server's banner ends with the login, the
admin has a favicon and a "View site" that leads somewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client, override_settings

from config.local_run import local_base_url, use_local_address
from config.management.commands.serve import ready_lines
from dunning.portal.tokens import portal_link_for
from tests.factories import CustomerFactory

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:8731", "http://127.0.0.1:8731"),
        ("8731", "http://127.0.0.1:8731"),
        ("0.0.0.0:8731", "http://127.0.0.1:8731"),
        ("localhost:9000", "http://localhost:9000"),
        ("[::1]:8731", "http://[::1]:8731"),
        ("http://127.0.0.1:8731/", "http://127.0.0.1:8731"),
        ("127.0.0.1", "http://127.0.0.1:8000"),
    ],
)
def test_the_local_base_url_follows_the_served_address(address: str, url: str) -> None:
    assert local_base_url(address) == url


@pytest.fixture
def no_portal_base_url(monkeypatch, settings):  # type: ignore[no-untyped-def]
    """No PORTAL_BASE_URL in the environment. Setting it through the fixture first makes the change that
    ``use_local_address`` makes to the settings land in this test's override, undone afterwards."""
    monkeypatch.delenv("PORTAL_BASE_URL", raising=False)
    settings.PORTAL_BASE_URL = "http://127.0.0.1:8000"
    yield settings
    os.environ.pop("PORTAL_BASE_URL", None)


@pytest.mark.django_db
def test_links_point_at_the_served_port_when_no_base_url_is_configured(no_portal_base_url) -> None:  # type: ignore[no-untyped-def]
    assert use_local_address("127.0.0.1:8731") == "http://127.0.0.1:8731"
    assert no_portal_base_url.PORTAL_BASE_URL == "http://127.0.0.1:8731"
    assert os.environ["PORTAL_BASE_URL"] == "http://127.0.0.1:8731"  # the task cluster inherits it
    customer = CustomerFactory()
    assert portal_link_for(customer_id=customer.pk, source="email").startswith(
        "http://127.0.0.1:8731/portal/"
    )


def test_a_configured_base_url_wins_over_the_served_address(monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PORTAL_BASE_URL", "https://billing.example.com")
    settings.PORTAL_BASE_URL = "https://billing.example.com"
    assert use_local_address("127.0.0.1:8731") == "https://billing.example.com"
    assert settings.PORTAL_BASE_URL == "https://billing.example.com"


@pytest.mark.django_db
def test_bootstrap_prints_the_served_address_and_serve_ends_with_the_login(
    no_portal_base_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with override_settings(DEBUG=True, LOCAL_STATE_DIR=tmp_path):
        out = StringIO()
        call_command("bootstrap_local", "--no-demo", "--address", "127.0.0.1:8731", stdout=out)
        assert "Admin:    http://127.0.0.1:8731/admin/" in out.getvalue()
        password = (tmp_path / "admin-credentials.txt").read_text().split("password: ")[1].strip()
        with override_settings(EMAIL_BACKEND="notifications.local_mailbox.LocalMailboxBackend"):
            assert ready_lines("127.0.0.1:8731") == [
                "Admin:    http://127.0.0.1:8731/admin/",
                f"Login:    admin / {password}",
                "Emails:   http://127.0.0.1:8731/admin/notifications/localmail/ (nothing is sent)",
            ]
    # Outside debug mode the password is never printed.
    with override_settings(DEBUG=False, LOCAL_STATE_DIR=tmp_path):
        assert ready_lines("127.0.0.1:8731") == ["Admin:    http://127.0.0.1:8731/admin/"]


def _setting(name: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "EMAIL_"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_READ_DOT_ENV": "0", **env})
    code = f"from django.conf import settings; print(settings.{name})"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=PROJECT_ROOT,
        env=clean,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_local_email_goes_to_the_mailbox_and_configured_email_where_it_says() -> None:
    secret = {"DJANGO_SECRET_KEY": "x" * 60}
    assert _setting("EMAIL_BACKEND", DJANGO_DEBUG="true") == "notifications.local_mailbox.LocalMailboxBackend"
    assert (
        _setting("EMAIL_BACKEND", DJANGO_DEBUG="true", EMAIL_URL="smtp://127.0.0.1:1025")
        == "django.core.mail.backends.smtp.EmailBackend"
    )
    assert (
        _setting("EMAIL_BACKEND", DJANGO_DEBUG="false", **secret)
        == "django.core.mail.backends.console.EmailBackend"
    )
    assert (
        _setting("EMAIL_BACKEND", DJANGO_DEBUG="false", EMAIL_URL="mailbox://", **secret)
        == "notifications.local_mailbox.LocalMailboxBackend"
    )


def test_the_favicon_is_served_from_static(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.ico"
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO file


@pytest.mark.django_db
def test_view_site_opens_the_customers_portal_entry(client: Client) -> None:
    assert str(admin.site.site_url) == "/portal/link/"
    response = client.get(str(admin.site.site_url))
    assert response.status_code == 200
    assert b"<form" in response.content
