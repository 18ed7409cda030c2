"""Outside input with the wrong type or bytes answers 400 with a JSON reason at every edge, never 500 (a 500
also emails staff, at the will of whoever sends it): the banner API, its tokens and embed endpoint, the
Stripe and email-provider webhooks, and the portal's forms. Runs on SQLite and on PostgreSQL, which refuses
NUL in text."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from customers.actors import Actor
from dunning.models import StripeEvent, StripeEventStatus
from dunning.portal.tokens import portal_link_for
from notifications.models import SuppressedAddress
from notifications.services import api_key_create, banner_token_for
from notifications.services.banners import EMBED_TOKEN_SALT
from tests.factories import BannerFactory, CustomerFactory, NotificationFactory, failed_invoice
from tests.support.stripe_account import WEBHOOK_SECRET, make_event, sign

pytestmark = pytest.mark.django_db
WEBHOOK_AUTH = "hooks:s3cret"


@pytest.fixture
def api_key() -> str:
    return api_key_create(name="product", actor=Actor.system("test"))[1]


def _error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return str(response.json()["error"])


# --- Banner API -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("\x00", "control characters"),
        ("acme\x00", "control characters"),
        ("ac\nme", "control characters"),
        ("x" * 101, "at most 100"),
        ("", "required"),
    ],
)
def test_the_banner_list_refuses_a_customer_id_that_cannot_exist(
    api_key: str, value: str, reason: str
) -> None:
    response = Client().get("/api/v1/banners/", {"customer": value}, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert reason in _error(response)


def test_a_nul_in_the_raw_query_string_is_a_400_not_a_database_error(api_key: str) -> None:
    response = Client().get("/api/v1/banners/?customer=%00", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert "control characters" in _error(response)


def _mint(api_key: str, body: object, *, raw: bytes | None = None) -> Any:
    return Client().post(
        reverse("notifications:banner-token"),
        data=raw if raw is not None else json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"customer": "acme", "ttl": 1e309}, "whole number of seconds"),  # JSON's Infinity: OverflowError
        ({"customer": "acme", "ttl": True}, "not true or false"),
        ({"customer": "acme", "ttl": 1.5}, "whole number of seconds"),
        ({"customer": "acme", "ttl": "soon"}, "whole number of seconds"),
        ({"customer": "acme", "ttl": [900]}, "whole number of seconds"),
        ({"customer": "acme", "ttl": 0}, "positive"),
        ({"customer": [1]}, "must be a string"),
        ({"customer": 42}, "must be a string"),
        ({"customer": {"id": "acme"}}, "must be a string"),
        ({"customer": "a\u0000b"}, "control characters"),
        ({"customer": "a\ud800b"}, "valid Unicode"),
        ({}, "required"),
        (["acme"], "must be an object"),
    ],
)
def test_minting_a_token_refuses_wrong_types_and_bytes(api_key: str, body: object, reason: str) -> None:
    # json.dumps writes 1e309 as Infinity, which Python's json (and the view) reads back as a float.
    assert reason in _error(_mint(api_key, body))


def test_a_body_that_is_not_utf8_json_is_refused(api_key: str) -> None:
    assert "not valid JSON" in _error(_mint(api_key, None, raw=b'{"customer": "\xff"}'))


def test_a_form_post_with_a_nul_is_refused(api_key: str) -> None:
    response = Client().post(
        reverse("notifications:banner-token"),
        {"customer": "acme\x00", "ttl": "60"},
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )
    assert "control characters" in _error(response)


def test_valid_tokens_still_mint_from_json_numbers_and_form_strings(api_key: str) -> None:
    assert _mint(api_key, {"customer": "acme", "ttl": 600.0}).json()["expires_in"] == 600
    assert _mint(api_key, {"customer": "acme", "ttl": 10**30}).json()["expires_in"] == 3600  # capped
    form = Client().post(
        reverse("notifications:banner-token"),
        {"customer": "acme", "ttl": "120"},
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )
    assert form.json()["expires_in"] == 120


def test_the_embed_endpoint_refuses_a_token_naming_an_impossible_customer() -> None:
    BannerFactory(customer=CustomerFactory(external_id="ab"))
    # Signed by us (an older version minted anything it was given), so only the id inside is wrong.
    token = signing.dumps({"c": "a\u0000b", "e": int(time.time()) + 600}, salt=EMBED_TOKEN_SALT)
    response = Client().get(reverse("notifications:banners-embed"), {"token": token})
    assert "control characters" in _error(response)


def test_tokens_are_never_minted_for_an_impossible_customer() -> None:
    with pytest.raises(ValueError, match="control characters"):
        banner_token_for(external_id="a\u0000b")
    with pytest.raises(ValueError, match="whole number"):
        banner_token_for(external_id="acme", ttl_seconds=float("inf"))  # type: ignore[arg-type]


# --- Stripe webhook ---------------------------------------------------------------------------------------------


@pytest.fixture
def stripe_secret(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_WEBHOOK_SECRET = [WEBHOOK_SECRET]


def _deliver(payload: str) -> Any:
    return Client().post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload),
    )


@pytest.mark.usefixtures("stripe_secret")
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"data": {"object": {"id": "cus_1", "name": "Ada\u0000"}}}, "NUL"),
        ({"data": {"object": {"id": "cus_1", "name": "Ada\ud800"}}}, "valid Unicode"),
        ({"created": "yesterday"}, "Unix timestamp"),
        ({"created": 10**20}, "Unix timestamp"),
        ({"created": True}, "Unix timestamp"),
        ({"id": ["evt_1"]}, "must be strings"),
        ({"api_version": {"v": 1}}, "api_version"),
    ],
)
def test_a_signed_event_with_wrong_types_or_bytes_is_a_400_and_kept_as_failed(
    change: dict, reason: str
) -> None:
    event = {**make_event("customer.updated", {"id": "cus_1", "object": "customer"}), **change}
    response = _deliver(json.dumps(event))
    assert reason in _error(response)
    kept = StripeEvent.objects.get()
    assert kept.status == StripeEventStatus.FAILED and kept.event_id.startswith("invalid:")


@pytest.mark.usefixtures("stripe_secret")
def test_a_signed_body_that_is_not_an_event_is_a_400() -> None:
    assert "not a Stripe event" in _error(_deliver("[]"))
    assert "not a Stripe event" in _error(_deliver('{"id": "evt_1"}'))


# --- The email provider's tracking webhook ----------------------------------------------------------------------


@pytest.fixture
def provider(settings):  # type: ignore[no-untyped-def]
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_AUTH}

    def configure(name: str) -> None:
        settings.ANYMAIL_PROVIDER = name

    return configure


def _track(name: str, body: bytes | str, *, auth: str = WEBHOOK_AUTH) -> Any:
    return Client().post(
        f"/anymail/{name}/tracking/",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(auth.encode()).decode(),
    )


@pytest.mark.parametrize("other", ["mailgun", "amazon_ses", "brevo", "sendgrid", "nosuchprovider"])
def test_only_the_configured_providers_webhook_is_mounted(provider, other: str) -> None:  # type: ignore[no-untyped-def]
    provider("postmark")
    assert _error(_track(other, "{}"), 404)
    assert (
        Client().post(f"/anymail/{other}/inbound/", data="{}", content_type="application/json").status_code
        == 404
    )


def test_without_a_provider_no_webhook_is_mounted(provider) -> None:  # type: ignore[no-untyped-def]
    provider("")
    assert _error(_track("postmark", "{}"), 404)


@pytest.mark.parametrize("name", ["postmark", "brevo"])
@pytest.mark.parametrize("body", ["[]", "[1, 2]", '"text"', "null", "not json", ""])
def test_a_body_the_provider_never_sends_is_a_400(provider, name: str, body: str) -> None:  # type: ignore[no-untyped-def]
    provider(name)
    assert _error(_track(name, body))


def test_a_wrong_password_is_a_400_without_a_security_error(provider, caplog) -> None:  # type: ignore[no-untyped-def]
    provider("postmark")
    assert _error(_track("postmark", "{}", auth="hooks:wrong")) == "authentication failed"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("Email", "ada\u0000@example.com", "NUL"), ("Email", "a" * 250 + "@example.com", "too long")],
)
def test_a_bounce_whose_address_cannot_be_stored_is_a_400(
    provider, field: str, value: str, reason: str
) -> None:  # type: ignore[no-untyped-def]
    provider("postmark")
    row = NotificationFactory(recipient="ada@example.com")
    bounce = {"RecordType": "Bounce", "Type": "HardBounce", "MessageID": "m-1", field: value}
    bounce["Metadata"] = {"notification_id": str(row.pk)}
    assert reason in _error(_track("postmark", json.dumps(bounce)))
    assert not SuppressedAddress.objects.exists()


def test_the_configured_provider_still_records_events(provider) -> None:  # type: ignore[no-untyped-def]
    provider("postmark")
    row = NotificationFactory(recipient="ada@example.com")
    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "MessageID": "m-1",
        "Email": "ada@example.com",
        "Metadata": {"notification_id": str(row.pk)},
    }
    assert _track("postmark", json.dumps(bounce)).status_code == 200
    assert SuppressedAddress.objects.filter(email="ada@example.com").exists()


# --- Portal ------------------------------------------------------------------------------------------------------


def test_the_portal_answers_nul_bytes_without_an_error(client: Client) -> None:
    _, invoice, _ = failed_invoice()
    link = (
        "/portal/"
        + portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source="email").split(
            "/portal/"
        )[1]
    )
    assert client.get("/portal/%00/").status_code == 404
    assert client.get(link + "?result=%00").status_code == 200
    assert client.post(link + "card/", {"number": "4242\x00", "expiry": "12/40\x00"}).status_code == 200
    assert client.post("/portal/link/", {"email": "ada\x00@example.com"}).status_code == 200
    assert client.post("/portal/%00/pay/").status_code == 404


def test_the_system_checks_name_a_wrong_or_unusable_provider(settings) -> None:  # type: ignore[no-untyped-def]
    from notifications.checks import check_tracking_webhook

    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_AUTH}
    settings.ANYMAIL_PROVIDER = ""
    assert check_tracking_webhook() == []
    settings.ANYMAIL_PROVIDER = "postmark"
    assert check_tracking_webhook() == []
    settings.ANYMAIL_PROVIDER = "nosuchprovider"
    assert [m.id for m in check_tracking_webhook()] == ["notifications.E001"]
    settings.ANYMAIL_PROVIDER = "mailgun"  # needs MAILGUN_WEBHOOK_SIGNING_KEY
    assert [m.id for m in check_tracking_webhook()] == ["notifications.E002"]
    settings.ANYMAIL = {}
    settings.ANYMAIL_PROVIDER = "postmark"
    assert [m.id for m in check_tracking_webhook()] == ["notifications.W001"]
