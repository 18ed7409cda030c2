"""Portal links: what a token carries, and every way one stops working (expiry, tampering, revocation,
another salt, a rotated key)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import signing
from django.test import override_settings

from customers.actors import Actor
from dunning.models import PortalAccess, RecoveryChannel
from dunning.portal.services import portal_links_revoke
from dunning.portal.tokens import (
    SALT,
    LinkProblem,
    PortalLinkError,
    max_age_for,
    portal_link_for,
    portal_token_make,
    portal_token_read,
)
from notifications.services import banner_token_for
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
STAFF = Actor.system("staff test")


def _token(url: str) -> str:
    return url.split("/portal/")[1].rstrip("/")


def _problem(token: str) -> LinkProblem:
    with pytest.raises(PortalLinkError) as caught:
        portal_token_read(token)
    return caught.value.problem


def _travel(monkeypatch: pytest.MonkeyPatch, delta: timedelta) -> None:
    """Signing reads the clock through time.time(): move it, as a customer opening the link later would."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + delta.total_seconds())


def test_a_link_carries_customer_invoice_version_and_source(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_BASE_URL = "https://billing.example.com/"
    customer = CustomerFactory()
    url = portal_link_for(customer_id=customer.pk, invoice_id=42, source="banner")
    assert url.startswith("https://billing.example.com/portal/") and url.endswith("/")
    link = portal_token_read(_token(url))
    assert (link.customer_id, link.invoice_id, link.version, link.source) == (customer.pk, 42, 1, "banner")
    assert link.channel == RecoveryChannel.BANNER_PORTAL
    assert (
        portal_token_read(_token(portal_link_for(customer_id=customer.pk, source="email"))).invoice_id is None
    )


@pytest.mark.parametrize(
    ("source", "channel"),
    [
        ("email", RecoveryChannel.EMAIL_PORTAL),
        ("banner", RecoveryChannel.BANNER_PORTAL),
        ("staff", RecoveryChannel.PORTAL),
        ("request", RecoveryChannel.PORTAL),
    ],
)
def test_the_source_decides_the_recovery_channel(source: str, channel: str) -> None:
    customer = CustomerFactory()
    assert (
        portal_token_read(_token(portal_link_for(customer_id=customer.pk, source=source))).channel == channel
    )


def test_an_unknown_source_is_refused_when_making_a_link() -> None:
    with pytest.raises(ValueError, match="unknown portal link source"):
        portal_token_make(customer_id=1, invoice_id=None, source="sms", version=1)


def test_email_links_expire_after_the_configured_days(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_LINK_MAX_AGE_DAYS = 14
    customer = CustomerFactory()
    token = _token(portal_link_for(customer_id=customer.pk, source="email"))
    _travel(monkeypatch, timedelta(days=13, hours=23))
    assert portal_token_read(token).customer_id == customer.pk
    _travel(monkeypatch, timedelta(days=14, minutes=1))
    assert _problem(token) == LinkProblem.EXPIRED


def test_banner_links_live_longer_than_email_links(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_LINK_MAX_AGE_DAYS = 14
    settings.PORTAL_BANNER_LINK_MAX_AGE_DAYS = 30
    assert max_age_for("banner") == timedelta(days=30)
    customer = CustomerFactory()
    banner = _token(portal_link_for(customer_id=customer.pk, source="banner"))
    email = _token(portal_link_for(customer_id=customer.pk, source="email"))
    _travel(monkeypatch, timedelta(days=20))
    assert portal_token_read(banner).source == "banner"
    assert _problem(email) == LinkProblem.EXPIRED


def test_the_expiry_setting_is_read_when_the_link_is_opened(settings) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    token = _token(portal_link_for(customer_id=customer.pk, source="email"))
    settings.PORTAL_LINK_MAX_AGE_DAYS = 0  # staff shortened the lifetime: older links stop at once
    assert _problem(token) == LinkProblem.EXPIRED


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: t.replace(
            t.split(":")[0], signing.b64_encode(b'{"c":2,"i":null,"v":1,"s":"email"}').decode()
        ),
        lambda t: t.split(":")[0],  # signature removed
        lambda t: "",
        lambda t: "x" * 600,
        lambda t: "garbage",
    ],
)
def test_a_tampered_token_is_invalid(tamper) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    token = _token(portal_link_for(customer_id=customer.pk, source="email"))
    assert _problem(tamper(token)) == LinkProblem.INVALID


def test_values_signed_for_another_purpose_are_not_links() -> None:
    customer = CustomerFactory(external_id="acme-1")
    payload = {"c": customer.pk, "i": None, "v": 1, "s": "email"}
    # The same payload under another salt, under no salt, and a real banner-embed token: all refused.
    assert _problem(signing.dumps(payload, salt="dunning.portal.v2", compress=True)) == LinkProblem.INVALID
    assert _problem(signing.dumps(payload)) == LinkProblem.INVALID
    assert _problem(banner_token_for(external_id="acme-1")) == LinkProblem.INVALID
    # ... while under the portal's own salt it is a link.
    assert portal_token_read(signing.dumps(payload, salt=SALT, compress=True)).customer_id == customer.pk


@pytest.mark.parametrize(
    "payload",
    [
        ["c", 1],
        {"c": 1, "i": None, "v": 1},  # no source
        {"c": "one", "i": None, "v": 1, "s": "email"},
        {"c": 1, "i": None, "v": 1, "s": "sms"},  # a source we never issue
    ],
)
def test_well_signed_but_malformed_payloads_are_invalid(payload: object) -> None:
    CustomerFactory()
    assert _problem(signing.dumps(payload, salt=SALT)) == LinkProblem.INVALID


def test_links_survive_a_key_rotation_while_the_old_key_is_a_fallback() -> None:
    customer = CustomerFactory()
    with override_settings(SECRET_KEY="old-key-" + "x" * 50, SECRET_KEY_FALLBACKS=[]):
        token = _token(portal_link_for(customer_id=customer.pk, source="email"))
    with override_settings(SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=["old-key-" + "x" * 50]):
        assert portal_token_read(token).customer_id == customer.pk
        # New links are signed with the new key and verify without the fallback.
        fresh = _token(portal_link_for(customer_id=customer.pk, source="email"))
    with override_settings(SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=[]):
        assert _problem(token) == LinkProblem.INVALID  # rotation finished: the old key is gone
        assert portal_token_read(fresh).customer_id == customer.pk


def test_revoking_stops_every_earlier_link_of_that_customer_only() -> None:
    customer, other = CustomerFactory(), CustomerFactory()
    first = _token(portal_link_for(customer_id=customer.pk, source="email"))
    second = _token(portal_link_for(customer_id=customer.pk, invoice_id=7, source="banner"))
    others = _token(portal_link_for(customer_id=other.pk, source="email"))

    assert portal_links_revoke(customer=customer, actor=STAFF) == 2
    assert _problem(first) == LinkProblem.REVOKED
    assert _problem(second) == LinkProblem.REVOKED
    assert portal_token_read(others).customer_id == other.pk
    after = _token(portal_link_for(customer_id=customer.pk, source="email"))
    assert portal_token_read(after).version == 2

    access = PortalAccess.objects.get(customer=customer)
    assert (access.token_version, access.revoked_by_label) == (2, "staff test")
    assert customer.audit_events.filter(action="portal.links_revoked").count() == 1
    portal_links_revoke(customer=customer, actor=STAFF)
    assert _problem(after) == LinkProblem.REVOKED


def test_reading_a_link_writes_nothing(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    token = _token(portal_link_for(customer_id=customer.pk, source="email"))
    # One read (the token version) and no write, however often a mail scanner opens it.
    for _ in range(3):
        with django_assert_num_queries(1) as captured:
            portal_token_read(token)
        assert captured.captured_queries[0]["sql"].lstrip().upper().startswith("SELECT")
    assert not PortalAccess.objects.exists()


@pytest.mark.parametrize("view", ["portal:page", "portal:card", "portal:pay", "portal:paid"])
def test_links_are_the_addresses_django_would_reverse(view: str) -> None:
    from django.urls import reverse

    from dunning.portal.tokens import portal_url

    token = portal_token_make(customer_id=7, invoice_id=9, source="email", version=1)
    url = portal_url(token, view=view)
    assert url.endswith(reverse(view, args=[token]))
    # Anything a signer would not produce goes through reverse (and its quoting) as before.
    odd = "a b?ü"
    assert portal_url(odd, view=view).endswith(reverse(view, args=[odd]))
