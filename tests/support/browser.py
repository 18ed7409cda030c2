"""Chromium for the browser tests: Debian's build driven by Playwright, and one-page loopback sites.

Under ``CI=true`` a missing Chromium or Playwright fails the test instead of skipping it: CI must really run
the browser tests (``make test`` installs Chromium with apt when it can).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
# Headless on a machine with no outside network: without these, Chromium keeps trying to reach Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def browser_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: CI must run the browser tests (apt-get install -y chromium; make install)")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium; the test's database connections are closed when it is done."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("needs Playwright (make install)")
    if not CHROMIUM.exists():
        browser_unavailable("needs Chromium at /usr/bin/chromium (make browser installs it)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls made here stay synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield browser
            finally:
                browser.close()
                # Inside Playwright's block the test runs in another context with a database connection of
                # its own: close it here, or it outlives the test and PostgreSQL cannot drop the test database.
                connections.close_all()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


class LoopbackSite:
    """A one-page web server on this machine: another origin than the live server's.

    Chromium refuses requests from public origins to a local server, so pages that stand in for another site
    (the product embedding the banner, a gateway's hosted page) must be served from loopback for real.
    ``host`` "localhost" gives an origin distinct from a live server on 127.0.0.1.
    """

    def __init__(self, html: Callable[[], str], *, host: str = "127.0.0.1") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = html().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Admin pages in the browser -------------------------------------------------------------------------

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
OUTPUT = Path(__file__).resolve().parent.parent.parent / "test-output"


class AdminTab:
    """A logged-in admin tab that records console errors and failed requests, and saves screenshots.

    ``problems`` lists every console error, page error and answer of 400 or more (the favicon included),
    so a test ends with ``assert tab.problems == []``; ``shot(name)`` saves the whole page as
    ``test-output/<folder>/<test>/<size>-NN-<name>.png``.
    """

    def __init__(self, page: Any, folder: Path, size: str) -> None:
        self.page = page
        self.folder = folder
        self.size = size
        self.problems: list[str] = []
        self.taken = 0
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on(
            "response", lambda r: self.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
        )

    def shot(self, name: str) -> Path:
        self.taken += 1
        target = self.folder / f"{self.size}-{self.taken:02d}-{name}.png"
        self.page.screenshot(path=str(target), full_page=True)
        return target

    def shot_of(self, locator: Any, name: str) -> Path:
        """One element only, e.g. a preview pane of a long page."""
        self.taken += 1
        target = self.folder / f"{self.size}-{self.taken:02d}-{name}.png"
        locator.screenshot(path=str(target))
        return target

    def overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (0: no sideways scrolling).

        Measured against the viewport's configured width: a phone-sized tab zooms out to fit a page that
        is too wide, so ``window.innerWidth`` grows with the page and hides the overflow.
        """
        width = VIEWPORTS[self.size]["width"]
        return max(0, int(self.page.evaluate("() => document.documentElement.scrollWidth")) - width)


@contextmanager
def admin_tab(
    browser: Any, live_server: Any, user: Any, *, size: str, folder: str, test_name: str
) -> Iterator[AdminTab]:
    """A tab of ``browser`` at ``size`` ("desktop" 1440×900 or "phone" 390×844), logged in as ``user``."""
    from django.conf import settings

    from tests.support.staff import StaffClient

    client = StaffClient()  # signed in with a verified second factor, as staff with money permissions must be
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    phone = size == "phone"
    context = browser.new_context(
        viewport=VIEWPORTS[size], device_scale_factor=2 if phone else 1, is_mobile=phone, has_touch=phone
    )
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    target = OUTPUT / folder / re.sub(r"[^\w.-]+", "_", test_name)
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob(f"{size}-*.png"):
        old.unlink()
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield AdminTab(page, target, size)
    finally:
        context.close()
