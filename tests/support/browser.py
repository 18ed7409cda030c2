"""Chromium for the browser tests: Debian's build driven by Playwright, and one-page loopback sites.

Under ``CI=true`` a missing Chromium or Playwright fails the test instead of skipping it: CI must really run
the browser tests (``make test`` installs Chromium with apt when it can).
"""

from __future__ import annotations

import os
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
