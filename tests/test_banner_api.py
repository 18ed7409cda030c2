"""The banner API: API keys (hashed, revocable), no customer enumeration, cache headers, constant queries,
and the token-authenticated endpoint the browser snippet uses."""

from __future__ import annotations

import hashlib
import statistics
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.actors import Actor
from customers.models import InvoiceStatus
from notifications.models import ApiKey, Banner, BannerSeverity
from notifications.services import (
    BannerRequest,
    api_key_create,
    api_key_revoke,
    banner_token_for,
    banners_clear,
    banners_show,
)
from tests.factories import BannerFactory, CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/banners/"
STAFF = Actor.system("test")


@pytest.fixture
def token() -> str:
    _, token = api_key_create(name="web app", actor=STAFF)
    return token


def _get(token: str | None, **params: str):  # type: ignore[no-untyped-def]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().get(URL, params, **headers)


# --- authentication --------------------------------------------------------------------------------------


def test_no_key_is_refused_with_a_bearer_challenge() -> None:
    response = _get(None, customer="acme")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("bad", ["dbk_nope_nope", "not-even-a-key", "Basic dXNlcjpwYXNz"])
def test_an_unknown_key_is_refused(bad: str) -> None:
    assert _get(bad, customer="acme").status_code == 401


def test_a_revoked_key_stops_working_at_once(token: str) -> None:
    BannerFactory(customer=CustomerFactory(external_id="acme"))
    assert _get(token, customer="acme").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(), actor=STAFF)
    assert _get(token, customer="acme").status_code == 401


def test_keys_are_stored_hashed_with_a_visible_prefix(token: str) -> None:
    key = ApiKey.objects.get()
    assert token.startswith(f"dbk_{key.prefix}_")
    assert key.hashed_key == hashlib.sha256(token.encode()).hexdigest()
    assert not ApiKey.objects.filter(hashed_key__contains=token[-20:]).exists()


def test_last_used_is_written_at_most_once_a_minute(token: str) -> None:
    CustomerFactory(external_id="acme")
    with CaptureQueriesContext(connection) as first:
        _get(token, customer="acme")
    used = ApiKey.objects.get().last_used_at
    assert used is not None
    with CaptureQueriesContext(connection) as second:
        _get(token, customer="acme")
    assert len(second) == len(first) - 1  # no UPDATE the second time
    assert ApiKey.objects.get().last_used_at == used
    ApiKey.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    _get(token, customer="acme")
    assert ApiKey.objects.get().last_used_at > used


# --- answers ---------------------------------------------------------------------------------------------


def test_active_banners_are_returned_with_cache_headers(token: str) -> None:
    customer = CustomerFactory(external_id="acme")
    banner = BannerFactory(
        customer=customer,
        message="Your payment failed.",
        severity=BannerSeverity.CRITICAL,
        cta_url="https://pay.example.com/p/x/",
    )
    BannerFactory(customer=customer, active=False)  # cleared: not shown
    BannerFactory(customer=CustomerFactory(external_id="other"))  # someone else's
    response = _get(token, customer="acme")
    assert response.status_code == 200
    body = response.json()
    assert body["customer"] == "acme"
    assert [b["id"] for b in body["banners"]] == [banner.pk]
    assert body["banners"][0]["severity"] == "critical"
    assert body["banners"][0]["cta_url"] == "https://pay.example.com/p/x/"
    assert response["Cache-Control"] == "private, max-age=30"
    assert "Authorization" in response["Vary"]


def test_an_unknown_customer_looks_exactly_like_a_customer_without_banners(token: str) -> None:
    CustomerFactory(external_id="known")
    unknown, known = _get(token, customer="ghost"), _get(token, customer="known")
    assert unknown.status_code == known.status_code == 200
    assert unknown.json() == {"customer": "ghost", "banners": []}
    assert known.json() == {"customer": "known", "banners": []}
    assert unknown["Cache-Control"] == known["Cache-Control"]


def test_the_customer_parameter_is_required(token: str) -> None:
    assert _get(token).status_code == 400


def test_a_banner_of_a_paid_invoice_is_never_shown(token: str) -> None:
    customer = CustomerFactory(external_id="acme")
    invoice = InvoiceFactory(customer=customer)
    BannerFactory(customer=customer, invoice=invoice)
    assert len(_get(token, customer="acme").json()["banners"]) == 1
    invoice.status = InvoiceStatus.PAID
    invoice.save()
    assert _get(token, customer="acme").json()["banners"] == []


def test_queries_do_not_grow_with_banners_and_the_answer_is_fast(token: str) -> None:
    customer = CustomerFactory(external_id="acme")
    BannerFactory(customer=customer)
    _get(token, customer="acme")  # last_used_at written
    with CaptureQueriesContext(connection) as one:
        _get(token, customer="acme")
    for _ in range(5):
        BannerFactory(customer=customer)
    with CaptureQueriesContext(connection) as six:
        _get(token, customer="acme")
    assert len(one) == len(six) == 2, [q["sql"] for q in six.captured_queries]
    client, samples = Client(), []
    for _ in range(21):
        started = time.perf_counter()
        client.get(URL, {"customer": "acme"}, HTTP_AUTHORIZATION=f"Bearer {token}")
        samples.append((time.perf_counter() - started) * 1000)
    assert statistics.median(samples) < 50


# --- showing and clearing --------------------------------------------------------------------------------


def test_showing_again_updates_the_one_banner_of_the_case_and_clearing_hides_it(token: str) -> None:
    customer = CustomerFactory(external_id="acme")
    first = BannerRequest(
        customer.pk, 7, None, "We could not charge your card.", "warning", "https://pay.example.com/1"
    )
    assert banners_show(requests=[first]) == 1
    again = BannerRequest(
        customer.pk, 7, None, "Access will be limited on 3 June.", "critical", "https://pay.example.com/2"
    )
    banners_show(requests=[again])
    banner = Banner.objects.get()
    assert (banner.message, banner.severity, banner.cta_url) == (again.message, "critical", again.cta_url)
    assert banners_clear(case_refs=[7]) == 1
    assert banners_clear(case_refs=[7]) == 0
    assert _get(token, customer="acme").json()["banners"] == []
    banners_show(requests=[first])  # the case reopened: the same row is active again
    assert Banner.objects.get().active


def test_showing_many_banners_is_one_statement() -> None:
    customers = [CustomerFactory() for _ in range(5)]
    requests = [BannerRequest(c.pk, 100 + i, None, "m", "info", "") for i, c in enumerate(customers)]
    with CaptureQueriesContext(connection) as queries:
        assert banners_show(requests=requests) == 5
    assert len(queries) == 1


def test_an_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        banners_show(requests=[BannerRequest(CustomerFactory().pk, 1, None, "m", "shouting", "")])


# --- tokens for the browser snippet ----------------------------------------------------------------------


def test_the_product_backend_mints_a_token_the_browser_uses(token: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.BANNER_EMBED_ALLOWED_ORIGINS = ["https://app.example.com"]
    BannerFactory(customer=CustomerFactory(external_id="acme"), message="Payment failed")
    minted = Client().post(
        reverse("notifications:banner-token"),
        data={"customer": "acme", "ttl": 300},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert minted.status_code == 200
    assert minted.json()["expires_in"] == 300
    embed = Client().get(
        reverse("notifications:banners-embed"),
        {"token": minted.json()["token"]},
        HTTP_ORIGIN="https://app.example.com",
    )
    assert embed.status_code == 200
    assert [b["message"] for b in embed.json()["banners"]] == ["Payment failed"]
    assert embed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Origin" in embed["Vary"]


def test_minting_a_token_needs_an_api_key() -> None:
    response = Client().post(reverse("notifications:banner-token"), {"customer": "acme"})
    assert response.status_code == 401


def test_other_origins_get_no_cors_header(settings) -> None:  # type: ignore[no-untyped-def]
    settings.BANNER_EMBED_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = Client().get(
        reverse("notifications:banners-embed"),
        {"token": banner_token_for(external_id="acme")},
        HTTP_ORIGIN="https://evil.example.net",
    )
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize(
    "make", [lambda: banner_token_for(external_id="acme", ttl_seconds=-1), lambda: "garbage"]
)
def test_expired_or_forged_tokens_are_refused(make) -> None:  # type: ignore[no-untyped-def]
    BannerFactory(customer=CustomerFactory(external_id="acme"))
    response = Client().get(reverse("notifications:banners-embed"), {"token": make()})
    assert response.status_code == 401
    assert "banners" not in response.json()


def test_a_token_signed_with_another_salt_is_refused() -> None:
    from django.core import signing

    forged = signing.dumps({"c": "acme", "e": int(time.time()) + 600})  # right key, wrong purpose
    response = Client().get(reverse("notifications:banners-embed"), {"token": forged})
    assert response.status_code == 401


# --- admin ----------------------------------------------------------------------------------------------


def test_creating_a_key_in_the_admin_shows_the_token_once(admin_client) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(reverse("admin:notifications_apikey_add"), {"name": "web app"})
    assert response.status_code == 200
    page = response.content.decode()
    key = ApiKey.objects.get()
    start = page.index(f"dbk_{key.prefix}_")
    shown = page[start : page.index("<", start)]
    assert hashlib.sha256(shown.encode()).hexdigest() == key.hashed_key
    assert "no-store" in response["Cache-Control"]
    change_page = admin_client.get(
        reverse("admin:notifications_apikey_change", args=[key.pk])
    ).content.decode()
    assert shown not in change_page
    assert _get(shown, customer="acme").status_code == 200


def test_the_revoke_action_revokes(admin_client) -> None:  # type: ignore[no-untyped-def]
    key, token = api_key_create(name="old", actor=STAFF)
    admin_client.post(
        reverse("admin:notifications_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]}
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert _get(token, customer="acme").status_code == 401
