"""The test suite's Stripe account: the patched localstripe (``localstripe_server``) in a subprocess.

The suite talks to it over HTTP exactly as to Stripe: the product through ``StripeGateway`` (the official
SDK with ``STRIPE_API_BASE`` pointing here), the tests through the SDK too when they set up the account
(customers, cards, invoices) the way a merchant's billing system would. Test-only controls live under
``/_config/`` (see ``localstripe_server``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_SECRET_KEY = "sk_test_dunning_localstripe"
START_TIMEOUT_SECONDS = 30


class LocalStripeUnavailable(RuntimeError):
    pass


class LocalStripe:
    """A running localstripe process and a few helpers to drive it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self._output: deque[str] = deque(maxlen=200)

    def start(self) -> LocalStripe:
        # Found, not imported: localstripe (GPL) only ever runs in its own process.
        if importlib.util.find_spec("localstripe") is None:
            raise LocalStripeUnavailable(
                "localstripe is not installed: `make install` (or pip install -e '.[dev]') installs it. "
                "The Stripe tests never skip silently."
            )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.localstripe_server", "--port", "0", "--exit-with-parent"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        port = self._read_port()
        self.base_url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_until_answering()
        return self

    def _read_port(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self._output.append(line)
            if line.startswith("PORT "):
                return int(line.split()[1])
        self.stop()
        raise LocalStripeUnavailable("localstripe did not start:\n" + "".join(self._output))

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._output.append(line)

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                self.get("/v1/balance")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise LocalStripeUnavailable("localstripe never answered:\n" + "".join(self._output))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def output(self) -> str:
        return "".join(self._output)

    # --- plain HTTP, for the test controls -----------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {TEST_SECRET_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request("POST", path, body or {})

    def reset(self) -> None:
        self.post("/_config/reset")

    def fault(self, path: str, mode: str, *, method: str = "POST", times: int = 1, **extra: Any) -> None:
        """The next ``times`` matching requests fail ``before`` running, ``after`` running, or answer late
        (``delay``, with ``seconds``)."""
        self.post("/_config/faults", {"path": path, "mode": mode, "method": method, "times": times, **extra})

    def schedule_smart_retry(self, invoice_id: str, at: int | None) -> None:
        """Pretend Stripe's Smart Retries scheduled (or, with None, dropped) another attempt of the invoice."""
        self.post(f"/_config/invoices/{invoice_id}", {"next_payment_attempt": at or 0})

    def complete_checkout(
        self, session_id: str, number: str, exp_month: int = 12, exp_year: int = 2030
    ) -> Any:
        """The customer fills in Stripe's hosted page with a card."""
        return self.post(
            f"/_config/checkout/sessions/{session_id}/complete",
            {"number": number, "exp_month": exp_month, "exp_year": exp_year},
        )

    def card_account_updater(self, payment_method_id: str, exp_month: int, exp_year: int) -> Any:
        return self.post(
            f"/_config/payment_methods/{payment_method_id}/automatic_update",
            {"exp_month": exp_month, "exp_year": exp_year},
        )

    def emit_event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """An event of a type localstripe never produces itself (e.g. ``customer.source.expiring``)."""
        return self.post("/_config/events", {"type": event_type, "object": obj})

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Every event so far, oldest first."""
        query = f"?limit=100&type={event_type}" if event_type else "?limit=100"
        return list(reversed(self.get("/v1/events" + query)["data"]))


def is_http_error(exc: BaseException) -> bool:
    return isinstance(exc, urllib.error.HTTPError)
