"""The Stripe gateway, over the official SDK (``stripe.StripeClient``).

This is the only module of the application that imports ``stripe`` (a test checks it). Everything else
that talks to Stripe (the webhook view verifying signatures, handlers re-fetching objects, commands
listing events) goes through :class:`StripeGateway` and :func:`verify_webhook`, and gets plain dicts back.

Charging:
- an invoice Stripe issued (``gateway_invoice_ref``) is paid through ``POST /v1/invoices/{id}/pay``, so the
  payment lands on that invoice and Stripe's own records stay right;
- any other invoice (CSV, another billing system) is charged with an off-session PaymentIntent on the
  customer's payment method, the invoice and the idempotency key in its metadata;
- every write carries an idempotency key: the attempt's own for charges, a fresh one for the rest (the SDK
  reuses it for its network retries).

Errors: card declines become declined results with Stripe's ``decline_code`` (else ``code``); network
errors, timeouts, 429 and 5xx are retryable :class:`GatewayError` (the outcome is unknown and the attempt
is reconciled with :meth:`StripeGateway.get_truth`); anything else is a permanent error (nothing charged).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import stripe
from django.conf import settings

from dunning.gateways.base import (
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    GatewayError,
    PaymentGateway,
    PaymentMethodDetails,
    RefundRequest,
    RefundResult,
    SetupSession,
    TruthQuery,
)
from dunning.gateways.stripe_amounts import AmountNotRepresentable, from_stripe_amount, to_stripe_amount
from dunning.gateways.stripe_objects import (
    AUTHENTICATION_REQUIRED,
    customer_default_method_id,
    decline_code_of,
    declined,
    expandable_id,
    invoice_subscription_id,
    method_details,
    result_from_payment_intent,
)

# The API version the installed SDK was generated for (STRIPE_API_VERSION should match it).
SDK_API_VERSION: str = stripe.api_version
# Subscriptions whose default payment method follows the customer's new one.
LIVE_SUBSCRIPTION_STATUSES = frozenset({"active", "past_due", "unpaid", "trialing", "incomplete"})
# Stripe clocks and ours differ a little; look a few minutes back when matching payments to attempts.
CLOCK_SKEW = timedelta(minutes=5)
PAGE_SIZE = 100


class WebhookSignatureInvalid(ValueError):
    """The Stripe-Signature header is missing, wrong for every configured secret, or too old."""


def verify_webhook(payload: bytes, header: str, secrets: Sequence[str], tolerance: int) -> dict[str, Any]:
    """Check ``header`` signs ``payload`` with one of ``secrets`` (several during a rotation) within
    ``tolerance`` seconds, with the SDK's own verification; return the event as a dict.

    Raises :class:`WebhookSignatureInvalid`, or ``ValueError`` for a signed body that is not a Stripe event.
    """
    usable = [secret for secret in secrets if secret.strip()]
    if not usable:
        raise WebhookSignatureInvalid("no webhook signing secret is configured (STRIPE_WEBHOOK_SECRET)")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookSignatureInvalid("the body is not UTF-8: Stripe never signed it") from None
    last_error = "no signature"
    for secret in usable:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError as exc:
            last_error = str(exc)
            continue
        break
    else:
        raise WebhookSignatureInvalid(last_error)
    event = json.loads(payload)
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise ValueError("the body is not a Stripe event (no id or type)")
    return event


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _new_key(purpose: str) -> str:
    return f"{settings.DUNNING_IDEMPOTENCY_PREFIX}-{purpose}-{uuid.uuid4().hex}"


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    """A Stripe error that is not a card decline, as retryable (unknown outcome) or permanent."""
    status = exc.http_status or 0
    if isinstance(exc, stripe.APIConnectionError):
        return GatewayError(f"Stripe unreachable: {exc.user_message or exc}", retryable=True, code="network")
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return GatewayError("Stripe rate limit (429)", retryable=True, code="rate_limit")
    if isinstance(exc, stripe.IdempotencyError):
        # The key was used before with other parameters: the first request may have charged.
        return GatewayError(f"Stripe idempotency error: {exc}", retryable=True, code="idempotency_error")
    if status == 409:
        # A request with this idempotency key is still running at Stripe (our own earlier try, timed out).
        return GatewayError(f"Stripe conflict (409): {exc}", retryable=True, code="conflict")
    if status >= 500 or status == 0:
        return GatewayError(
            f"Stripe error {status or ''}: {exc}".strip(), retryable=True, code="server_error"
        )
    code = getattr(exc, "code", None) or type(exc).__name__
    return GatewayError(f"Stripe refused the request ({code}): {exc.user_message or exc}", retryable=False)


class StripeGateway(PaymentGateway):
    name = "stripe"

    def __init__(
        self,
        *,
        secret_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        timeout: float | None = None,
        max_network_retries: int | None = None,
    ) -> None:
        key = settings.STRIPE_SECRET_KEY if secret_key is None else secret_key
        if not key:
            raise GatewayError("STRIPE_SECRET_KEY is not set", retryable=False, code="gateway_error")
        base = settings.STRIPE_API_BASE if api_base is None else api_base
        self.livemode = key.startswith(("sk_live_", "rk_live_"))
        self._http = stripe.RequestsClient(
            timeout=settings.STRIPE_TIMEOUT_SECONDS if timeout is None else timeout
        )
        self.client = stripe.StripeClient(
            key,
            stripe_version=api_version or settings.STRIPE_API_VERSION,
            base_addresses={"api": base.rstrip("/")} if base else None,
            max_network_retries=(
                settings.STRIPE_MAX_NETWORK_RETRIES if max_network_retries is None else max_network_retries
            ),
            http_client=self._http,
        )

    def close(self) -> None:
        self._http.close()

    # --- charging ------------------------------------------------------------------------------------
    def charge(self, request: ChargeRequest) -> ChargeResult:
        try:
            amount = to_stripe_amount(request.amount_minor, request.currency)
        except (AmountNotRepresentable, ValueError) as exc:
            raise GatewayError(str(exc), retryable=False, code="amount_not_representable") from exc
        try:
            if request.gateway_invoice_ref:
                return self._pay_invoice(request, amount)
            return self._payment_intent(request, amount)
        except stripe.CardError as exc:
            return self._declined_from_error(exc)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc

    def _current_default(
        self, request: ChargeRequest, invoice: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The method Stripe holds as the default for this charge now: the invoice's own default, its
        subscription's, else the customer's invoice default ({} when there is none)."""
        method_id = expandable_id((invoice or {}).get("default_payment_method"))
        subscription_id = invoice_subscription_id(invoice) if invoice else ""
        if not method_id and subscription_id:
            subscription = self._read(self.client.v1.subscriptions.retrieve, subscription_id)
            method_id = expandable_id(subscription.get("default_payment_method"))
        if not method_id and request.customer_ref:
            method_id = customer_default_method_id(self.fetch_customer(request.customer_ref))
        return self.fetch_payment_method(method_id) if method_id else {}

    def _method_to_charge(
        self, request: ChargeRequest, invoice: Mapping[str, Any] | None = None
    ) -> tuple[str, PaymentMethodDetails | None]:
        """(the method to charge, its details when it is not the one we hold a copy of).

        With ``use_gateway_default``, Stripe's current default is read at charge time: a missed
        ``customer.updated`` must not leave every retry on the old card while a new one waits at Stripe.
        A method blocked by a hard decline is refused here, before anything is sent.
        """
        chosen, details = request.payment_method_ref, None
        if request.use_gateway_default:
            current = self._current_default(request, invoice)
            if current.get("id"):
                chosen = str(current["id"])
                if chosen != request.payment_method_ref:
                    details = method_details(current)
        if chosen and chosen in request.blocked_payment_method_refs:
            raise GatewayError(
                f"Stripe's default method {chosen} was hard-declined before: not charged again.",
                retryable=False,
                code="payment_method_blocked",
            )
        return chosen, details

    def _payment_intent(self, request: ChargeRequest, amount: int) -> ChargeResult:
        method, details = self._method_to_charge(request)
        if not (request.customer_ref and method):
            raise GatewayError(
                "The customer has no Stripe customer or payment method on file.",
                retryable=False,
                code="gateway_error",
            )
        params: dict[str, Any] = {
            "amount": amount,
            "currency": request.currency.lower(),
            "customer": request.customer_ref,
            "payment_method": method,
            "confirm": True,
            "description": f"Invoice {request.invoice_number}",
            # Saved methods only, never a redirect: nobody is there to follow one off-session.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "metadata": {
                **dict(request.metadata),
                "invoice_number": request.invoice_number,
                "idempotency_key": request.idempotency_key,
            },
        }
        if request.off_session:
            params["off_session"] = True
        try:
            intent = self.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.CardError as exc:
            return replace(self._declined_from_error(exc), payment_method=details)
        return replace(result_from_payment_intent(_as_dict(intent)), payment_method=details)

    def _pay_invoice(self, request: ChargeRequest, amount: int) -> ChargeResult:
        invoice = self.fetch_invoice(request.gateway_invoice_ref)
        status = invoice.get("status")
        if status != "open" and status != "draft":
            raise GatewayError(
                f"Stripe invoice {invoice['id']} is {status}: nothing was charged.",
                retryable=False,
                code="invoice_not_open",
            )
        if request.off_session and invoice.get("next_payment_attempt"):
            # One owner of retries: Stripe's Smart Retries already plan another attempt of this invoice.
            raise GatewayError(
                f"Stripe is still retrying invoice {invoice['id']} (next attempt planned): nothing was "
                "charged. With STRIPE_RETRY_OWNER=dunning, turn Smart Retries off in Stripe.",
                retryable=False,
                code="gateway_retrying",
            )
        remaining = invoice.get("amount_remaining", invoice.get("amount_due", 0))
        if remaining != amount:
            raise GatewayError(
                f"Stripe invoice {invoice['id']} has {remaining} {invoice.get('currency')} left to pay, "
                f"but this attempt is for {amount}: nothing was charged until the invoice is synced.",
                retryable=False,
                code="amount_mismatch",
            )
        method, details = self._method_to_charge(request, invoice)
        params: dict[str, Any] = {"off_session": request.off_session}
        if method.startswith(("pm_", "card_", "src_")):
            params["payment_method"] = method
        try:
            paid = _as_dict(
                self.client.v1.invoices.pay(
                    invoice["id"],
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": request.idempotency_key},
                )
            )
        except stripe.CardError as exc:
            return replace(self._declined_from_error(exc), payment_method=details)
        if paid.get("status") == "paid":
            intent = self.invoice_payment_intent(paid)
            reference = expandable_id(intent.get("latest_charge")) or expandable_id(intent.get("id"))
            return ChargeResult(
                outcome=ChargeOutcome.SUCCEEDED,
                gateway_reference=reference or paid["id"],
                payment_method=details,
            )
        intent = self.invoice_payment_intent(paid)
        if intent:
            return replace(result_from_payment_intent(intent), payment_method=details)
        return ChargeResult(
            outcome=ChargeOutcome.UNKNOWN, message=f"Stripe invoice {paid['id']} is {paid.get('status')}"
        )

    def _declined_from_error(self, exc: stripe.CardError) -> ChargeResult:
        error = exc.error
        decline = getattr(error, "decline_code", None) if error is not None else None
        charge = expandable_id(getattr(error, "charge", None)) if error is not None else ""
        intent = getattr(error, "payment_intent", None) if error is not None else None
        reference = charge or expandable_id(_as_dict(intent) if intent is not None else None)
        code = decline_code_of(exc.code, decline)
        return declined(code, reference=reference, message=exc.user_message or str(exc))

    # --- refunds (double payments) ------------------------------------------------------------------------
    def refund(self, request: RefundRequest) -> RefundResult:
        reference = request.gateway_reference
        target = {"payment_intent": reference} if reference.startswith("pi_") else {"charge": reference}
        try:
            amount = to_stripe_amount(request.amount_minor, request.currency)
            refund = _as_dict(
                self.client.v1.refunds.create(
                    params={**target, "amount": amount, "metadata": {"reason": request.reason}},  # type: ignore[arg-type]
                    options={"idempotency_key": request.idempotency_key},
                )
            )
        except (AmountNotRepresentable, ValueError) as exc:
            raise GatewayError(str(exc), retryable=False, code="amount_not_representable") from exc
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return RefundResult(
            reference=str(refund["id"]),
            amount_minor=from_stripe_amount(int(refund.get("amount") or 0), request.currency),
        )

    # --- the truth about an attempt ---------------------------------------------------------------------
    def get_truth(self, query: TruthQuery) -> ChargeResult | None:
        try:
            if query.gateway_invoice_ref:
                return self._invoice_truth(query)
            intent = self._find_payment_intent(query)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return None if intent is None else self._settled(intent)

    @staticmethod
    def _settled(intent: Mapping[str, Any]) -> ChargeResult:
        result = result_from_payment_intent(intent)
        if result.outcome == ChargeOutcome.UNKNOWN:
            # Still moving (bank debits take days): the attempt stays unknown and is asked again later.
            raise GatewayError(result.message, retryable=True, code="processing")
        return result

    def _find_payment_intent(self, query: TruthQuery) -> dict[str, Any] | None:
        reference = query.gateway_reference
        if reference.startswith("pi_"):
            return self.fetch_payment_intent(reference)
        if reference.startswith("ch_"):
            charge = _as_dict(self.client.v1.charges.retrieve(reference))
            intent_id = expandable_id(charge.get("payment_intent"))
            return self.fetch_payment_intent(intent_id) if intent_id else None
        if not query.customer_ref:
            return None  # we never charge without a Stripe customer: nothing can have happened
        params: dict[str, Any] = {"customer": query.customer_ref, "limit": PAGE_SIZE}
        if query.started_at is not None:
            params["created"] = {"gte": int((query.started_at - CLOCK_SKEW).timestamp())}
        # Listing is strongly consistent, unlike search: a payment made a second ago is already here.
        listing = self.client.v1.payment_intents.list(params=params)  # type: ignore[arg-type]
        for intent in listing.auto_paging_iter():
            data = _as_dict(intent)
            if (data.get("metadata") or {}).get("idempotency_key") == query.idempotency_key:
                return data
        return None

    def _invoice_truth(self, query: TruthQuery) -> ChargeResult | None:
        invoice = self.fetch_invoice(query.gateway_invoice_ref)
        intent = self.invoice_payment_intent(invoice)
        started = int((query.started_at - CLOCK_SKEW).timestamp()) if query.started_at else 0
        if invoice.get("status") == "paid":
            reference = expandable_id(intent.get("latest_charge")) or str(intent.get("id") or invoice["id"])
            return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, gateway_reference=reference)
        # An open invoice: a payment made since the attempt started is the attempt's; none means that
        # nothing was charged. (Invoice payments carry no metadata of ours, so time is what links them.)
        if not intent or int(intent.get("created") or 0) < started:
            return None
        return self._settled(intent)

    # --- hosted payment-method page (Checkout in setup mode) -------------------------------------------
    def start_payment_method_update(
        self, *, customer_ref: str, return_url: str, cancel_url: str, metadata: Mapping[str, str]
    ) -> SetupSession | None:
        """A Stripe Checkout Session in setup mode: Stripe's hosted page collects and saves the card (3-D
        Secure included); card data never touches our servers. ``return_url`` may contain
        ``{CHECKOUT_SESSION_ID}``, which Stripe fills in."""
        try:
            session = _as_dict(
                self.client.v1.checkout.sessions.create(
                    params={
                        "mode": "setup",
                        "customer": customer_ref,
                        "success_url": return_url,
                        "cancel_url": cancel_url,
                        "payment_method_types": ["card"],
                        "metadata": dict(metadata),
                    },
                    options={"idempotency_key": _new_key("setup")},
                )
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return SetupSession(url=str(session["url"]), reference=str(session["id"]))

    def complete_payment_method_update(self, *, reference: str) -> PaymentMethodDetails | None:
        try:
            session = _as_dict(
                self.client.v1.checkout.sessions.retrieve(
                    reference,
                    params={"expand": ["setup_intent.payment_method"]},
                )
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        setup_intent = session.get("setup_intent") or {}
        if session.get("status") != "complete" or not isinstance(setup_intent, Mapping):
            return None
        if setup_intent.get("status") != "succeeded":
            return None
        method = setup_intent.get("payment_method")
        if isinstance(method, str):
            method = self.fetch_payment_method(method)
        return method_details(method) if method else None

    def set_default_payment_method(self, *, customer_ref: str, payment_method_ref: str) -> None:
        """The customer's invoice default, and the default of each live subscription (a subscription's own
        default wins over the customer's when Stripe charges a renewal)."""
        try:
            self.client.v1.customers.update(
                customer_ref,
                params={"invoice_settings": {"default_payment_method": payment_method_ref}},
                options={"idempotency_key": _new_key("default")},
            )
            subscriptions = self.client.v1.subscriptions.list(
                params={"customer": customer_ref, "limit": PAGE_SIZE}
            )
            for subscription in subscriptions.auto_paging_iter():
                data = _as_dict(subscription)
                if data.get("status") in LIVE_SUBSCRIPTION_STATUSES:
                    self.client.v1.subscriptions.update(
                        data["id"],
                        params={"default_payment_method": payment_method_ref},
                        options={"idempotency_key": _new_key("default")},
                    )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc

    # --- reads for webhooks, reconciliation and imports (plain dicts) -----------------------------------
    def _read(self, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return _as_dict(call(*args, **kwargs))
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc

    def fetch_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self._read(self.client.v1.invoices.retrieve, invoice_id)

    def fetch_customer(self, customer_id: str) -> dict[str, Any]:
        return self._read(self.client.v1.customers.retrieve, customer_id)

    def fetch_payment_method(self, method_id: str) -> dict[str, Any]:
        return self._read(self.client.v1.payment_methods.retrieve, method_id)

    def fetch_payment_intent(self, intent_id: str) -> dict[str, Any]:
        return self._read(self.client.v1.payment_intents.retrieve, intent_id)

    def invoice_payment_intent(self, invoice: Mapping[str, Any]) -> dict[str, Any]:
        """The invoice's latest PaymentIntent ({} when it has none). API versions from 2025-03-31 list
        an invoice's payments separately; older ones put ``payment_intent`` on the invoice."""
        if "payment_intent" in invoice:
            intent_id = expandable_id(invoice.get("payment_intent"))
        else:
            payments = self._read(
                self.client.v1.invoice_payments.list, params={"invoice": invoice["id"], "limit": 1}
            )
            first = (payments.get("data") or [{}])[0]
            intent_id = expandable_id((first.get("payment") or {}).get("payment_intent"))
        return self.fetch_payment_intent(intent_id) if intent_id else {}

    def _iterate(self, service: Any, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            for item in service.list(params={**params, "limit": PAGE_SIZE}).auto_paging_iter():
                yield _as_dict(item)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc

    def iter_events(self, *, event_type: str, created_gte: datetime) -> Iterator[dict[str, Any]]:
        """Events of one type since ``created_gte``, newest first (Stripe keeps them 30 days)."""
        return self._iterate(
            self.client.v1.events,
            {"type": event_type, "created": {"gte": int(created_gte.timestamp())}},
        )

    def iter_customers(self, *, created_gte: datetime | None = None) -> Iterator[dict[str, Any]]:
        params = {"created": {"gte": int(created_gte.timestamp())}} if created_gte else {}
        return self._iterate(self.client.v1.customers, params)

    def iter_card_methods(self, *, customer_id: str) -> Iterator[dict[str, Any]]:
        return self._iterate(self.client.v1.payment_methods, {"customer": customer_id, "type": "card"})

    def iter_invoices(self, *, status: str, created_gte: datetime | None = None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"status": status}
        if created_gte:
            params["created"] = {"gte": int(created_gte.timestamp())}
        return self._iterate(self.client.v1.invoices, params)

    @staticmethod
    def amount_from_stripe(amount: int, currency: str) -> int:
        return from_stripe_amount(amount, currency)


__all__ = [
    "AUTHENTICATION_REQUIRED",
    "SDK_API_VERSION",
    "StripeGateway",
    "WebhookSignatureInvalid",
    "verify_webhook",
]
