"""The portal's pages: what they show, that a GET changes nothing, the security headers, the pages for links
that no longer work, the fresh-link form, rate limits, and tokens kept out of logs."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.actors import Actor
from customers.models import AuditEvent, Invoice, PaymentMethod
from dunning.models import (
    CaseEvent,
    CaseEventKind,
    DunningCase,
    PaymentAttempt,
    PortalAccess,
    SimulatedCharge,
)
from dunning.portal.log_redaction import RedactPortalTokens, redact_portal_tokens
from dunning.portal.security import content_security_policy
from dunning.portal.services import portal_links_revoke
from dunning.portal.tokens import portal_link_for, portal_token_read
from dunning.services.tick import run_tick
from notifications.models import Banner, Notification
from notifications.services import notifications_dispatch
from tests.factories import ContactFactory, CustomerFactory, InvoiceFactory, failed_invoice

pytestmark = pytest.mark.django_db
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(url: str) -> str:
    return "/portal/" + url.split("/portal/")[1]


def _link(invoice: Invoice, source: str = "email") -> str:
    return _path(portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source=source))


def _text(response: Any) -> str:
    """The page's visible text, whitespace collapsed (enough to assert on wording)."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _assert_portal_headers(response: Any) -> None:
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"
    assert response["X-Frame-Options"] == "DENY"
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


# --- The page -------------------------------------------------------------------------------------------------


def test_the_page_shows_amount_invoice_lines_card_and_decline_reason(client: Client) -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4000000000009995", decline_code="insufficient_funds")
    invoice.lines = [
        {"description": "Team plan", "quantity": 1, "amount_minor": 3900},
        {"description": "Extra seat", "quantity": 2, "amount_minor": 1000},
        "not a line",  # malformed rows from the billing system are skipped, never shown raw
    ]
    invoice.save()
    response = client.get(_link(invoice))
    assert response.status_code == 200
    _assert_portal_headers(response)
    text = _text(response)
    assert "Update your payment method" in text
    assert "Amount due €49.00" in text
    assert f"Invoice {invoice.number} €49.00" in text
    assert "Team plan €39.00" in text and "2 × Extra seat €10.00" in text
    assert "not a line" not in text
    assert "Card on file Visa •••• 9995" in text
    assert "not enough funds" in text  # the decline code's customer message, in plain words
    html = response.content.decode()
    assert html.count("<h1") == 1
    assert '<html lang="en">' in html
    # No inline script or style anywhere: the CSP allows none.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "style=" not in html and "<style" not in html
    assert re.search(r'<label class="field__label" for="id_number">Card number</label>', html)
    assert 'autocomplete="cc-number"' in html and 'inputmode="numeric"' in html


def test_amounts_in_different_currencies_are_listed_not_added(client: Client) -> None:
    _, eur, _ = failed_invoice(amount_minor=4900)
    usd = InvoiceFactory(customer=eur.customer, currency="USD", amount_due_minor=1250, gateway="simulated")
    from dunning.services.cases import invoice_payment_failed
    from tests.factories import TEST_ACTOR

    invoice_payment_failed(invoice=usd, actor=TEST_ACTOR, decline_code="insufficient_funds")
    text = _text(client.get(_link(eur)))
    assert "Amount due €49.00 $12.50" in text
    assert "We couldn't collect €49.00 and $12.50" in text
    assert "61.50" not in text


def test_the_invoice_the_link_names_comes_first(client: Client) -> None:
    _, older, _ = failed_invoice()
    newer = InvoiceFactory(customer=older.customer, due_at=timezone.now(), gateway="simulated")
    from dunning.services.cases import invoice_payment_failed
    from tests.factories import TEST_ACTOR

    invoice_payment_failed(invoice=newer, actor=TEST_ACTOR, decline_code="insufficient_funds")
    text = _text(client.get(_link(newer)))
    assert text.index(f"Invoice {newer.number}") < text.index(f"Invoice {older.number}")


def test_nothing_to_pay_still_shows_the_card_and_the_form(client: Client) -> None:
    customer = CustomerFactory()
    PaymentMethod.objects.create(
        customer=customer, brand="visa", last4="4242", exp_month=1, exp_year=2099, is_default=True
    )
    response = client.get(_path(portal_link_for(customer_id=customer.pk, source="staff")))
    text = _text(response)
    assert "There's nothing to pay right now" in text
    assert "Visa •••• 4242 · expires 01/2099" in text
    assert "Pay " not in text
    assert 'name="number"' in response.content.decode()


def test_company_name_and_logo_come_from_settings(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.COMPANY_NAME = "Acme Cloud"
    settings.COMPANY_LOGO_URL = "https://cdn.acme.example/logo.svg"
    _, invoice, _ = failed_invoice()
    response = client.get(_link(invoice))
    html = response.content.decode()
    assert '<img class="brand__logo" src="https://cdn.acme.example/logo.svg"' in html
    assert "Acme Cloud" in _text(response)
    assert "img-src 'self' data: https://cdn.acme.example;" in response["Content-Security-Policy"]


def test_the_csp_lets_forms_reach_the_gateway_page_only_with_a_hosted_gateway(settings) -> None:  # type: ignore[no-untyped-def]
    assert "form-action 'self';" in content_security_policy()
    settings.PAYMENT_GATEWAY = "stripe"
    assert "form-action 'self' https://checkout.stripe.com;" in content_security_policy()
    settings.PAYMENT_GATEWAY = "tests.test_portal_payments.HostedGateway"
    assert "form-action 'self' https://hosted.example;" in content_security_policy()


# --- A GET changes nothing ----------------------------------------------------------------------------------------


def _state() -> dict[str, list[tuple[Any, ...]]]:
    """Every row a portal action could change, apart from the timeline's portal events."""
    return {
        "cases": list(DunningCase.objects.order_by("pk").values_list()),
        "attempts": list(PaymentAttempt.objects.order_by("pk").values_list()),
        "invoices": list(Invoice.objects.order_by("pk").values_list()),
        "methods": list(PaymentMethod.objects.order_by("pk").values_list()),
        "banners": list(Banner.objects.order_by("pk").values_list()),
        "notifications": list(Notification.objects.order_by("pk").values_list()),
        "charges": list(SimulatedCharge.objects.order_by("pk").values_list()),
        "audit": list(AuditEvent.objects.order_by("pk").values_list()),
        "portal_access": list(PortalAccess.objects.order_by("pk").values_list()),
        "other_events": list(
            CaseEvent.objects.exclude(kind=CaseEventKind.PORTAL).order_by("pk").values_list()
        ),
    }


def test_a_get_changes_nothing_but_records_the_visit(client: Client) -> None:
    case, invoice, _ = failed_invoice()
    ContactFactory(customer=invoice.customer)
    run_tick(now=case.opened_at + timedelta(minutes=5))  # an email and a banner, as in real life
    assert Banner.objects.filter(active=True).exists() and Notification.objects.exists()
    before = _state()
    link = _link(invoice)
    for path in (link, link, link + "?result=declined", link + "paid/"):
        assert client.get(path).status_code in (200, 303)
    assert _state() == before
    visits = CaseEvent.objects.filter(kind=CaseEventKind.PORTAL)
    # One visit for a burst of views (reloads, mail scanners), with the source for the channel report.
    assert [(e.case_id, e.details["action"], e.details["source"], e.actor_type) for e in visits] == [
        (case.pk, "visit", "email", "customer")
    ]
    # The link still works afterwards: opening it used nothing up.
    assert client.get(link).status_code == 200


def test_head_and_other_methods_on_the_page_change_nothing(client: Client) -> None:
    _, invoice, _ = failed_invoice()
    before = _state()
    refused = client.put(_link(invoice))
    assert refused.status_code == 405 and refused["Cache-Control"] == "no-store"
    assert client.post(_link(invoice)).status_code == 405
    assert client.get(_link(invoice) + "pay/").status_code == 405
    assert client.get(_link(invoice) + "card/").status_code == 405
    assert _state() == before


def test_the_page_reads_as_many_queries_for_six_invoices_as_for_one(client: Client) -> None:
    from dunning.services.cases import invoice_payment_failed
    from tests.factories import TEST_ACTOR

    def queries(invoices: int) -> int:
        _, invoice, _ = failed_invoice()
        for _index in range(invoices - 1):
            extra = InvoiceFactory(customer=invoice.customer, gateway="simulated")
            invoice_payment_failed(invoice=extra, actor=TEST_ACTOR, decline_code="insufficient_funds")
        client.get(_link(invoice))  # the first view records the visit; the next ones only read
        with CaptureQueriesContext(connection) as captured:
            assert client.get(_link(invoice)).status_code == 200
        return len(captured.captured_queries)

    one, six = queries(1), queries(6)
    assert one == six <= 7


# --- Links that no longer work ------------------------------------------------------------------------------------


def test_a_tampered_link_gets_a_friendly_page_with_the_fresh_link_form(client: Client) -> None:
    _, invoice, _ = failed_invoice()
    response = client.get(_link(invoice)[:-5] + "XXXX/")
    assert response.status_code == 404
    _assert_portal_headers(response)
    text = _text(response)
    assert "This link doesn't work any more" in text
    assert "Send me a fresh link" in text
    assert response.content.decode().count("<h1") == 1


def test_an_expired_link_says_so(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    _, invoice, _ = failed_invoice()
    link = _link(invoice)
    settings.PORTAL_LINK_MAX_AGE_DAYS = 0
    response = client.get(link)
    assert response.status_code == 410
    assert "This link has expired" in _text(response)
    assert not CaseEvent.objects.filter(kind=CaseEventKind.PORTAL).exists()


def test_a_revoked_link_stops_working_for_gets_and_posts(client: Client) -> None:
    _, invoice, _ = failed_invoice()
    link = _link(invoice)
    portal_links_revoke(customer=invoice.customer, actor=Actor.system("test"))
    assert client.get(link).status_code == 410
    assert client.post(link + "pay/").status_code == 410
    assert client.post(link + "card/", {"number": "4242424242424242", "expiry": "12/40"}).status_code == 410
    assert not PaymentAttempt.objects.exclude(source="initial").exists()


def test_a_link_for_a_customer_that_no_longer_exists_is_invalid(client: Client) -> None:
    assert (
        client.get(_path(portal_link_for(customer_id=987654, source="email", version=1))).status_code == 404
    )


# --- "Send me a fresh link" -----------------------------------------------------------------------------------------


def _fresh(client: Client, email: str) -> Any:
    # The form queues its work after commit: run it, as the request's commit would outside a test.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post("/portal/link/", {"email": email})


def _sent_links() -> list[str]:
    notifications_dispatch(notification_ids=None, now=timezone.now() + timedelta(seconds=1))
    return [re.search(r"https?://\S+/portal/\S+/", m.body).group(0) for m in mail.outbox]  # type: ignore[union-attr]


def test_a_fresh_link_goes_to_the_billing_contact_and_works(client: Client) -> None:
    case, invoice, _ = failed_invoice()
    ContactFactory(customer=invoice.customer, email="ap@customer.example")
    response = _fresh(client, "  AP@customer.example ")
    assert response.status_code == 200
    _assert_portal_headers(response)
    links = _sent_links()
    assert [m.to for m in mail.outbox] == [["Billing desk <ap@customer.example>"]]
    assert "secure link" in mail.outbox[0].subject
    link = portal_token_read(links[0].split("/portal/")[1].rstrip("/"))
    assert (link.customer_id, link.source) == (invoice.customer_id, "request")
    assert client.get(_path(links[0])).status_code == 200
    actions = list(
        CaseEvent.objects.filter(case=case, kind=CaseEventKind.PORTAL).values_list(
            "details__action", flat=True
        )
    )
    assert actions == ["fresh_link_sent", "visit"]
    assert AuditEvent.objects.filter(customer=invoice.customer, action="portal.fresh_link_sent").exists()


def test_the_answer_is_the_same_for_known_and_unknown_addresses(client: Client) -> None:
    _, invoice, _ = failed_invoice()
    ContactFactory(customer=invoice.customer, email="ap@customer.example")
    known, unknown = _fresh(client, "ap@customer.example"), _fresh(client, "nobody@else.example")
    assert known.status_code == unknown.status_code == 200
    assert _text(known) == _text(unknown)
    assert "If this address receives our invoices" in _text(known)
    assert len(_sent_links()) == 1


def test_the_customers_own_address_counts_only_without_billing_contacts(client: Client) -> None:
    lonely = CustomerFactory(email="owner@solo.example")
    busy = CustomerFactory(email="owner@busy.example")
    ContactFactory(customer=busy, email="ap@busy.example")
    _fresh(client, "owner@solo.example")
    _fresh(client, "owner@busy.example")  # busy's emails go to its billing contact, not to this address
    _sent_links()
    assert [m.to for m in mail.outbox] == [[f"{lonely.name} <owner@solo.example>"]]


def test_the_fresh_link_form_explains_a_bad_address(client: Client) -> None:
    response = _fresh(client, "not-an-address")
    assert response.status_code == 200
    assert "Enter an email address" in _text(response)
    assert 'aria-invalid="true"' in response.content.decode()
    assert client.get("/portal/link/").status_code == 200


# --- Rate limits ------------------------------------------------------------------------------------------------


def test_posts_are_limited_per_link(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_POSTS_PER_LINK = 3
    _, invoice, _ = failed_invoice(card="pm_sim_4000000000009995")
    link = _link(invoice)
    statuses = [client.post(link + "card/", {"number": "1", "expiry": ""}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.post(link + "pay/")
    assert limited.status_code == 429
    _assert_portal_headers(limited)
    assert int(limited["Retry-After"]) > 0
    assert "Too many attempts" in _text(limited)
    assert not PaymentAttempt.objects.filter(source="portal").exists()
    # Another link (another customer) from elsewhere is not affected.
    _, other, _ = failed_invoice()
    assert Client(REMOTE_ADDR="10.0.0.9").post(_link(other) + "card/", {"number": "1"}).status_code == 200


def test_the_portal_still_takes_payments_when_the_cache_is_down(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    """Redis unreachable (nothing listens on port 1): the page opens and a new card is charged. The rate
    limits and visit records are skipped, and logged, instead of answering 500."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    _, invoice, _ = failed_invoice(card="pm_sim_4000000000009995")
    link = _link(invoice)
    assert client.get(link).status_code == 200
    paid = client.post(link + "card/", {"number": "4242424242424242", "expiry": "12/39"})
    assert paid.status_code == 303 and paid["Location"].endswith("/paid/")
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_posts_are_limited_per_address_across_links(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_POSTS_PER_IP = 2
    links = [_link(failed_invoice()[1]) for _ in range(3)]
    assert [client.post(link + "card/", {"number": "1"}).status_code for link in links] == [200, 200, 429]


def test_the_client_address_is_read_behind_trusted_proxies_only(settings) -> None:  # type: ignore[no-untyped-def]
    from django.test import RequestFactory

    from dunning.portal.security import client_ip

    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert client_ip(request) == "10.0.0.1"
    settings.PORTAL_TRUSTED_PROXIES = 1
    assert client_ip(request) == "203.0.113.7"  # the address our proxy saw, not what the client claimed


def test_the_fresh_link_form_is_limited_per_address_and_per_client(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_FRESH_LINKS_PER_ADDRESS = 2
    settings.PORTAL_FRESH_LINKS_PER_IP = 4
    customer = CustomerFactory(email="ap@x.example")
    assert [_fresh(client, "ap@x.example").status_code for _ in range(3)] == [200, 200, 429]
    assert [_fresh(client, f"a{n}@y.example").status_code for n in range(2)] == [200, 429]
    _sent_links()
    assert len(mail.outbox) == 2  # nobody's inbox gets flooded
    assert all(m.to == [f"{customer.name} <ap@x.example>"] for m in mail.outbox)


# --- Tokens never reach the logs ------------------------------------------------------------------------------------


def _record(msg: str, args: Any) -> logging.LogRecord:
    return logging.LogRecord("django.server", logging.INFO, __file__, 1, msg, args, None)


def test_the_filter_redacts_tokens_in_every_log_shape() -> None:
    token = ".eJyrVkpWsjLUUcpUsjLUUSpWsqpWKs7PBbKVUhNzcpSMlaxqawFhtwuZ:1v0abc:Zx9-Q"
    redact = RedactPortalTokens()
    runserver = _record('"%s" %s %s', (f"POST /portal/{token}/card/ HTTP/1.1", "303", "0"))
    assert (
        redact.filter(runserver)
        and runserver.getMessage() == '"POST /portal/[redacted]/card/ HTTP/1.1" 303 0'
    )
    # gunicorn's access log passes a dict of atoms.
    gunicorn = _record(
        '%(h)s "%(r)s" %(s)s', {"h": "1.2.3.4", "r": f"GET /portal/{token}/ HTTP/1.1", "s": "200"}
    )
    assert redact.filter(gunicorn) and token not in gunicorn.getMessage()
    assert "/portal/[redacted]/" in gunicorn.getMessage()
    untouched = _record("GET %s", ("/portal/link/",))
    assert redact.filter(untouched) and untouched.args == ("/portal/link/",)
    assert redact_portal_tokens("/portal/setup/return/ /static/portal/portal.css") == (
        "/portal/setup/return/ /static/portal/portal.css"
    )
    assert redact_portal_tokens(
        "Referer: https://billing.example.com:8443/portal/abc:def/paid/ next=/portal/x"
    ) == ("Referer: https://billing.example.com:8443/portal/[redacted]/paid/ next=/portal/[redacted]")
    # The banner embed API's short-lived token travels in the query string.
    assert redact_portal_tokens('"GET /api/v1/banners/embed/?token=abc.def:ghi&x=1 HTTP/1.1" 200') == (
        '"GET /api/v1/banners/embed/?token=[redacted]&x=1 HTTP/1.1" 200'
    )


def test_the_configured_logging_keeps_tokens_out_of_the_log() -> None:
    """In a fresh process with the project's LOGGING (pytest replaces the root handlers in this one)."""
    script = (
        "import django, logging; django.setup()\n"
        "from django.test import Client\n"
        "Client().get('/portal/abc.SECRET:def/')\n"  # django.request: Not Found
        "Client().get('/portal/abc.SECRET:def/pay/')\n"  # django.request: Method Not Allowed
        "logging.getLogger('django.server').info('\"%s\" %s %s', 'GET /portal/abc.SECRET:def/ HTTP/1.1', 200, 9)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Not Found: /portal/[redacted]/" in done.stderr
    assert "Method Not Allowed (GET): /portal/[redacted]/pay/" in done.stderr
    assert '"GET /portal/[redacted]/ HTTP/1.1" 200 9' in done.stderr
    assert "SECRET" not in done.stderr
