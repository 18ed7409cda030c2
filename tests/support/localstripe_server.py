"""localstripe, patched to behave more like Stripe for the dunning tests, run as its own process.

localstripe (PyPI, GPL-3.0-or-later) is only ever started as a separate test server process by
``tests/support/localstripe.py``: neither product code nor the test process imports it. This module is the
program that process runs (``python -m tests.support.localstripe_server``). Importing
``localstripe_patches`` and ``localstripe_extras`` patches localstripe's resources; this module then adds
the routes and a middleware (idempotency keys, injected faults), and serves localstripe's aiohttp app on
127.0.0.1, printing ``PORT <n>`` once it listens (port 0 picks a free one).

Every patch, and why (README "Running against a local Stripe-compatible server" lists them too):

1. No disk state: localstripe pickles its whole store to /tmp/localstripe.pickle on every write (slow, and
   shared between concurrent runs on one machine). The store stays in memory.
2. Idempotency keys: Stripe replays the first answer to a repeated ``Idempotency-Key`` (header
   ``Idempotent-Replayed: true``) and refuses a reused key with other parameters (``idempotency_error``).
   localstripe ignored the header.
3. Decline codes: localstripe declines every test card with ``card_declined`` and no ``decline_code``, and
   declines most of them when they are *attached*. Here the documented test cards attach and are declined
   when *charged*, with Stripe's ``code`` and ``decline_code`` (:data:`CHARGE_DECLINES`): the situation
   dunning deals with (a card that was fine when saved). ``4000000000000002`` still fails when attached.
4. Off-session authentication: a 3-D Secure card confirmed ``off_session`` fails with
   ``authentication_required`` (HTTP 402), as Stripe does, instead of waiting in ``requires_action``.
5. One-off invoices: ``POST /v1/invoices`` from pending invoice items without a subscription,
   ``/finalize``, ``/mark_uncollectible``; ``/pay`` takes ``off_session`` and ``payment_method``, answers
   a decline with a 402 card error and emits ``invoice.payment_failed`` (or
   ``invoice.payment_action_required``); voiding an invoice that was never charged works; invoices get a
   ``number``, ``amount_remaining``, an ``attempt_count`` that counts payment attempts (from 0), and a
   ``next_payment_attempt`` that is null unless a test says Stripe scheduled a Smart Retry
   (``POST /_config/invoices/{id}``). ``invoice.paid`` is emitted with ``invoice.payment_succeeded``.
6. The pinned API version's invoice shape: invoices no longer carry ``payment_intent`` or ``charge``; their
   payments are listed by ``GET /v1/invoice_payments?invoice=…`` (API 2025-03-31 and later).
7. Lists: PaymentIntents by ``customer`` and ``created``, invoices by ``status`` and ``created``, customers
   by ``created``.
8. Events: ``payment_method.attached`` on attach, ``previous_attributes`` on ``customer.updated`` when the
   default payment method changes, ``invoice.voided``.
9. Checkout Sessions in setup mode (``/v1/checkout/sessions``), which localstripe lacks; a test completes
   the hosted page with ``POST /_config/checkout/sessions/{id}/complete`` (a card number).
10. ``default_payment_method`` on subscriptions.
11. Test controls under ``/_config/``: reset everything, inject faults (an error before or after a request
    runs, a delay), run the card account updater on a payment method, and emit any event type
    (``customer.source.expiring``, ``invoice.upcoming``…) with a given object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import sys
import threading
from typing import Any

from localstripe import resources as r

from tests.support import localstripe_patches as patches
from tests.support.localstripe_extras import (
    CheckoutSession,
    api_card_updater,
    api_complete_checkout,
    api_emit,
    api_set_invoice,
)
from tests.support.localstripe_patches import (
    api_attach,
    api_finalize,
    api_invoice_payments,
    api_mark_uncollectible,
    api_pay,
    api_void,
)

IDEMPOTENCY: dict[str, tuple[str, int, bytes]] = {}
FAULTS: list[dict[str, Any]] = []


# --- the server ---------------------------------------------------------------------------------------
EXTRA_ROUTES = [
    ("POST", "/v1/payment_methods/{id}/attach", api_attach),
    ("POST", "/v1/invoices/{id}/finalize", api_finalize),
    ("POST", "/v1/invoices/{id}/pay", api_pay),
    ("POST", "/v1/invoices/{id}/void", api_void),
    ("POST", "/v1/invoices/{id}/mark_uncollectible", api_mark_uncollectible),
    ("GET", "/v1/invoice_payments", api_invoice_payments),
    ("POST", "/_config/invoices/{id}", api_set_invoice),
    ("POST", "/_config/checkout/sessions/{id}/complete", api_complete_checkout),
    ("POST", "/_config/payment_methods/{id}/automatic_update", api_card_updater),
    ("POST", "/_config/events", api_emit),
]


def _install_routes() -> Any:
    # localstripe's server module builds its routes at import time from ``extra_apis``: replace the
    # entries patched here first, so the routes call the new functions.
    replaced = {(method, url): func for method, url, func in EXTRA_ROUTES}
    r.extra_apis[:] = [(method, url, replaced.pop((method, url), func)) for method, url, func in r.extra_apis]
    r.extra_apis[:0] = [(method, url, func) for (method, url), func in replaced.items()]
    from localstripe import server

    for method, url, func in (
        ("POST", "/v1/checkout/sessions", server.api_create),
        ("GET", "/v1/checkout/sessions/{id}", server.api_retrieve),
    ):
        server.app.router.add_route(method, url, func(CheckoutSession, url))
    server.app.router.add_post("/_config/reset", _reset)
    server.app.router.add_post("/_config/faults", _add_fault)
    server.app.middlewares.insert(0, _faults_and_idempotency)
    return server


async def _reset(request: Any) -> Any:
    from aiohttp import web

    r.store.clear()
    IDEMPOTENCY.clear()
    FAULTS.clear()
    patches.COUNTERS["invoice_number"] = 0
    return web.Response()


async def _add_fault(request: Any) -> Any:
    """{"method": "POST", "path": "/v1/payment_intents", "mode": "before"|"after"|"delay", "times": 1,
    "status": 500, "seconds": 2}: the next matching requests fail before running, fail after running (the
    client never learns the result), or answer late."""
    from aiohttp import web

    fault = await request.json()
    fault.setdefault("times", 1)
    fault.setdefault("status", 500)
    FAULTS.append(fault)
    return web.Response()


def _take_fault(method: str, path: str) -> dict[str, Any] | None:
    for fault in FAULTS:
        if fault.get("method", method) == method and path.startswith(fault["path"]) and fault["times"] > 0:
            fault["times"] -= 1
            return fault
    return None


def _json(status: int, body: dict[str, Any]) -> Any:
    from aiohttp import web

    return web.json_response(body, status=status)


def _fault_response(fault: dict[str, Any]) -> Any:
    return _json(
        fault["status"],
        {"error": {"type": "api_error", "message": "Injected server error (test fault)."}},
    )


def _middleware() -> Any:
    from aiohttp import web

    @web.middleware
    async def middleware(request: Any, handler: Any) -> Any:
        fault = None if request.path.startswith("/_config/") else _take_fault(request.method, request.path)
        if fault and fault["mode"] == "before":
            return _fault_response(fault)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key:
            body = await request.read()
            fingerprint = hashlib.sha256(request.path.encode() + b"\0" + body).hexdigest()
            stored = IDEMPOTENCY.get(key)
            if stored is not None:
                if stored[0] != fingerprint:
                    return _json(
                        400,
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with.",
                            }
                        },
                    )
                response = web.Response(status=stored[1], body=stored[2], content_type="application/json")
                response.headers["Idempotent-Replayed"] = "true"
                response.headers["Idempotency-Key"] = key
                return response
        response = await handler(request)
        # Stripe keeps the result of every request that started executing (errors included), not of
        # requests refused before they ran (bad parameters, conflicts).
        if key and response.status in (200, 402):
            IDEMPOTENCY[key] = (fingerprint, response.status, response.body)
        if fault and fault["mode"] == "after":
            return _fault_response(fault)
        if fault and fault["mode"] == "delay":
            await asyncio.sleep(float(fault.get("seconds", 2)))
        return response

    return middleware


_faults_and_idempotency = None


def main() -> None:
    global _faults_and_idempotency
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when standard input closes (the test run that started it ended, even if it was killed)",
    )
    args = parser.parse_args()
    from aiohttp import web

    if args.exit_with_parent:
        # A killed test run must not leave a server behind on a shared machine.
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    patches.BASE_URL = f"http://127.0.0.1:{port}"
    _faults_and_idempotency = _middleware()
    server = _install_routes()
    print(f"PORT {port}", flush=True)
    web.run_app(server.app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    sys.exit(main())
