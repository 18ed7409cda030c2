"""The browser snippet in Chromium: it renders the customer's banners from a token, as accessible bars that
can be dismissed and stay dismissed, and never runs server text as HTML."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connections

from notifications.models import BannerSeverity
from notifications.services import banner_token_for
from tests.factories import BannerFactory, CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def browser_page():  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (make browser installs it)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls made here are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()
            # Inside Playwright's block the test runs in another context, with its own database
            # connection: close it here, or it outlives the test and PostgreSQL cannot drop the test database.
            connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


class ProductSite:
    """The product's own web server (a different origin from the back office), serving one page."""

    def __init__(self) -> None:
        self.html = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = site.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()


@pytest.fixture
def product() -> Iterator[ProductSite]:
    site = ProductSite()
    yield site
    site.server.shutdown()
    site.server.server_close()


def _product_page(live_server_url: str, token: str) -> str:
    return f"""<!doctype html><html lang="en"><head><title>Product</title></head><body>
      <div id="billing-banner"></div><main><h1>Dashboard</h1></main>
      <script src="{live_server_url}/static/js/dunning-banner.js"
              data-endpoint="{live_server_url}/api/v1/banners/embed/"
              data-token="{token}" data-target="#billing-banner"></script>
    </body></html>"""


def test_the_snippet_renders_a_dismissible_accessible_bar(
    browser_page, live_server, product, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.BANNER_EMBED_ALLOWED_ORIGINS = [product.origin]
    customer = CustomerFactory(external_id="acme-42")
    BannerFactory(
        customer=customer,
        message="Your payment failed. <img src=x onerror=alert(1)>",
        severity=BannerSeverity.CRITICAL,
        cta_url="https://pay.example.com/portal/tok/",
        cta_label="Update card",
    )
    BannerFactory(
        customer=customer,
        message="Heads-up: your card expires soon.",
        severity="info",
        cta_url="javascript:alert(1)",
    )
    product.html = _product_page(live_server.url, banner_token_for(external_id="acme-42"))
    page = browser_page
    page.goto(f"{product.origin}/")
    page.wait_for_selector(".dunning-banner")

    critical = page.locator(".dunning-banner--critical")
    assert critical.get_attribute("role") == "alert"
    assert (
        critical.locator(".dunning-banner__message").inner_text()
        == "Your payment failed. <img src=x onerror=alert(1)>"
    )
    assert page.locator("#billing-banner img").count() == 0  # text, never HTML
    link = critical.locator("a.dunning-banner__cta")
    assert (link.inner_text(), link.get_attribute("href")) == (
        "Update card",
        "https://pay.example.com/portal/tok/",
    )
    info = page.locator(".dunning-banner--info")
    assert info.get_attribute("role") == "status"
    assert info.locator("a").count() == 0  # a javascript: link is dropped

    # Keyboard: the close button is reachable and labelled; dismissing moves focus to the next banner.
    close = critical.locator("button.dunning-banner__close")
    assert close.get_attribute("aria-label") == "Dismiss this message"
    close.focus()
    page.keyboard.press("Enter")
    assert page.locator(".dunning-banner").count() == 1
    assert page.evaluate("document.activeElement.className") == "dunning-banner__close"

    # Dismissed stays dismissed on the next page view.
    page.reload()
    page.wait_for_selector(".dunning-banner--info")
    assert page.locator(".dunning-banner--critical").count() == 0


def test_an_expired_token_shows_nothing(browser_page, live_server, product, settings) -> None:  # type: ignore[no-untyped-def]
    settings.BANNER_EMBED_ALLOWED_ORIGINS = [product.origin]
    BannerFactory(customer=CustomerFactory(external_id="acme-42"))
    product.html = _product_page(live_server.url, banner_token_for(external_id="acme-42", ttl_seconds=-5))
    page = browser_page
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.goto(f"{product.origin}/")
    page.wait_for_function("() => document.readyState === 'complete'")
    page.wait_for_timeout(300)
    assert page.locator(".dunning-banner").count() == 0
    assert any("401" in m for m in messages)
