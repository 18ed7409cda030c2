"""The browser snippet in Chromium: it renders the customer's banners from a token, as accessible bars that
can be dismissed and stay dismissed, and never runs server text as HTML."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifications.models import BannerSeverity
from notifications.services import banner_token_for
from tests.factories import BannerFactory, CustomerFactory
from tests.support.browser import LoopbackSite, chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page():  # type: ignore[no-untyped-def]
    with chromium() as browser:
        yield browser.new_page()


class ProductSite(LoopbackSite):
    """The product's own web server (a different origin from the back office), serving one page."""

    def __init__(self) -> None:
        self.html = ""
        super().__init__(lambda: self.html)


@pytest.fixture
def product() -> Iterator[ProductSite]:
    site = ProductSite()
    yield site
    site.close()


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
