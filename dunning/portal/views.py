"""The portal's pages. Thin: verify the link, check the rate limit, call one service, render or redirect.

GET pages only read (and write a visit on the case timelines); every change is a POST with CSRF. A POST
that did something answers with a redirect (303) to a page that reads the result from the database, so
reloading never submits twice.

- ``/portal/<token>/``: the page (amount due, invoices, card on file, decline reason, the actions);
- ``/portal/<token>/card/`` (POST): the simulated gateway's card form, or off to the gateway's own page;
- ``/portal/<token>/pay/`` (POST): pay now with the card on file;
- ``/portal/<token>/paid/``: the confirmation;
- ``/portal/setup/return/``, ``/portal/setup/complete/`` (POST), ``/portal/setup/cancelled/``: back from
  the gateway's page. No token travels to the gateway: an HttpOnly cookie scoped to ``/portal/setup/``
  remembers the link and the gateway's reference for an hour;
- ``/portal/link/``: "send me a fresh link".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from customers.models import Customer
from dunning.gateways import BUILTIN_GATEWAYS, GatewayError, PaymentGateway, get_gateway
from dunning.portal import services
from dunning.portal.forms import CardForm, FreshLinkForm
from dunning.portal.security import Limit, client_ip, portal_csrf_protect, portal_headers, rate_limited
from dunning.portal.selectors import PortalSummary, portal_summary, recent_portal_payments
from dunning.portal.services import OutcomeStatus, PortalOutcome
from dunning.portal.tokens import LinkProblem, PortalLink, PortalLinkError, portal_token_read

SETUP_COOKIE = "portal_setup"
SETUP_COOKIE_SALT = "dunning.portal.setup"
SETUP_COOKIE_MAX_AGE = 3600
SETUP_COOKIE_PATH = "/portal/setup/"


# --- Helpers ---------------------------------------------------------------------------------------------


def _gateway_class() -> type[PaymentGateway]:
    return import_string(BUILTIN_GATEWAYS.get(settings.PAYMENT_GATEWAY, settings.PAYMENT_GATEWAY))


def _offers_hosted_page(gateway_class: type[PaymentGateway]) -> bool:
    """The gateway has a page of its own for new methods (Stripe Checkout); the portal shows a button."""
    return gateway_class.start_payment_method_update is not PaymentGateway.start_payment_method_update


def _takes_test_cards(gateway_class: type[PaymentGateway]) -> bool:
    return callable(getattr(gateway_class, "tokenize_test_card", None))


def _language(customer: Customer | None) -> str:
    """The customer's language when we ship it, else the default (English)."""
    shipped = {code for code, _name in settings.LANGUAGES}
    wanted = (customer.locale if customer else "").replace("_", "-").split("-")[0].lower()
    return wanted if wanted in shipped else settings.LANGUAGE_CODE


def _render(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    customer: Customer | None = None,
    status: int = 200,
) -> HttpResponse:
    base = {"company_name": settings.COMPANY_NAME, "company_logo_url": settings.COMPANY_LOGO_URL}
    with translation.override(_language(customer)):
        return render(request, template, {**base, **context}, status=status)


def _invalid(request: HttpRequest, problem: LinkProblem) -> HttpResponse:
    """Expired, tampered with or revoked: a friendly page offering a fresh link (404 for garbage, 410 for
    a genuine link that no longer works)."""
    status = 404 if problem == LinkProblem.INVALID else 410
    return _render(
        request,
        "portal/invalid_link.html",
        {"problem": problem.value, "form": FreshLinkForm()},
        status=status,
    )


def _too_many(request: HttpRequest, retry_after: int) -> HttpResponse:
    minutes = max(1, (retry_after + 59) // 60)
    response = _render(request, "portal/rate_limited.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _resolve(token: str) -> tuple[PortalLink, Customer] | LinkProblem:
    try:
        link = portal_token_read(token)
    except PortalLinkError as error:
        return error.problem
    customer = Customer.objects.filter(pk=link.customer_id).first()
    if customer is None:
        return LinkProblem.INVALID
    return link, customer


def _post_limit(request: HttpRequest, token: str) -> int:
    return rate_limited(
        [
            Limit("post-link", token, settings.PORTAL_POSTS_PER_LINK),
            Limit("post-ip", client_ip(request), settings.PORTAL_POSTS_PER_IP),
        ]
    )


def _admit_post(request: HttpRequest, token: str) -> tuple[PortalLink, Customer] | HttpResponse:
    """What every form post checks first: the rate limits, then the link. The answer page if either fails."""
    retry_after = _post_limit(request, token)
    if retry_after:
        return _too_many(request, retry_after)
    resolved = _resolve(token)
    if isinstance(resolved, LinkProblem):
        return _invalid(request, resolved)
    return resolved


def _page_url(token: str, result: str = "") -> str:
    url = reverse("portal:page", args=[token])
    return f"{url}?{urlencode({'result': result})}" if result else url


def _after(outcome: PortalOutcome, token: str) -> HttpResponse:
    """Post/redirect/get: the next page reads the result from the database."""
    if outcome.status in (OutcomeStatus.PAID, OutcomeStatus.NOTHING_DUE):
        return HttpResponseRedirect(reverse("portal:paid", args=[token]), status=303)
    return HttpResponseRedirect(_page_url(token, outcome.status), status=303)


def _notice(result: str, summary: PortalSummary) -> dict[str, str] | None:
    """The message at the top of the page after an action, from what the database now says."""
    if result == OutcomeStatus.DECLINED and summary.has_balance:
        return {
            "kind": "error",
            "title": _("Your card was declined"),
            "text": summary.decline_message + " " + _("Please try another card."),
        }
    if result == OutcomeStatus.BLOCKED and summary.has_balance:
        return {
            "kind": "error",
            "title": _("This card can't be used"),
            "text": summary.pay_now_blocked or _("Please add a different card."),
        }
    notices = {
        OutcomeStatus.PENDING: (
            "info",
            _("We're confirming your payment"),
            _("This usually takes less than a minute. Refresh this page to see the result."),
        ),
        OutcomeStatus.SAVED: (
            "success",
            _("Your new card is saved"),
            _("Use “Pay now” below to settle the rest of your balance."),
        ),
        OutcomeStatus.ABANDONED: (
            "info",
            _("No new card was added"),
            _("Your payment details haven't changed. You can try again at any time."),
        ),
        "setup_failed": (
            "error",
            _("We couldn't confirm your new card"),
            _("Nothing was charged. Please try again in a moment."),
        ),
        "unavailable": (
            "error",
            _("Cards can't be updated here right now"),
            _("Please contact us and we'll help you update your payment method."),
        ),
    }
    if result in notices and (result != OutcomeStatus.SAVED or summary.has_balance):
        kind, title, text = notices[result]
        return {"kind": kind, "title": title, "text": text}
    return None


def _page(
    request: HttpRequest,
    token: str,
    link: PortalLink,
    customer: Customer,
    *,
    form: CardForm | None = None,
    result: str = "",
    visit: bool = False,
) -> HttpResponse:
    with translation.override(_language(customer)):
        summary = portal_summary(customer=customer, invoice_id=link.invoice_id)
        notice = _notice(result, summary)
    if visit:
        services.portal_visit_record(link=link, case_ids=summary.case_ids)
    gateway_class = _gateway_class()
    hosted = _offers_hosted_page(gateway_class)
    context = {
        "token": token,
        "summary": summary,
        "notice": notice,
        "hosted": hosted,
        "card_form": not hosted and _takes_test_cards(gateway_class),
        "test_mode": getattr(gateway_class, "name", "") == "simulated",
        "form": form or CardForm(),
    }
    return _render(request, "portal/page.html", context, customer=customer)


# --- Pages with a token ------------------------------------------------------------------------------------


@portal_headers
@require_GET
def page(request: HttpRequest, token: str) -> HttpResponse:
    resolved = _resolve(token)
    if isinstance(resolved, LinkProblem):
        return _invalid(request, resolved)
    link, customer = resolved
    return _page(request, token, link, customer, result=request.GET.get("result", "")[:20], visit=True)


@portal_headers
@require_POST
@portal_csrf_protect
@sensitive_post_parameters("number", "expiry")
def card(request: HttpRequest, token: str) -> HttpResponse:
    admitted = _admit_post(request, token)
    if isinstance(admitted, HttpResponse):
        return admitted
    link, customer = admitted
    gateway = get_gateway()
    try:
        if _offers_hosted_page(type(gateway)):
            return _start_hosted_page(request, token, link, customer, gateway)
        if not _takes_test_cards(type(gateway)):
            return HttpResponseRedirect(_page_url(token, "unavailable"), status=303)
        form = CardForm(request.POST)
        if not form.is_valid():
            return _page(request, token, link, customer, form=form)
        month, year = form.cleaned_data["expiry"]
        details = gateway.tokenize_test_card(  # type: ignore[attr-defined]
            number=form.cleaned_data["number"], exp_month=month, exp_year=year
        )
        outcome = services.portal_card_submit(link=link, customer=customer, details=details, gateway=gateway)
    finally:
        gateway.close()
    return _after(outcome, token)


@portal_headers
@require_POST
@portal_csrf_protect
def pay(request: HttpRequest, token: str) -> HttpResponse:
    admitted = _admit_post(request, token)
    if isinstance(admitted, HttpResponse):
        return admitted
    link, customer = admitted
    return _after(services.portal_pay_now(link=link, customer=customer), token)


@portal_headers
@require_GET
def paid(request: HttpRequest, token: str) -> HttpResponse:
    resolved = _resolve(token)
    if isinstance(resolved, LinkProblem):
        return _invalid(request, resolved)
    link, customer = resolved
    with translation.override(_language(customer)):
        summary = portal_summary(customer=customer, invoice_id=link.invoice_id)
        if summary.has_balance:
            return HttpResponseRedirect(_page_url(token), status=303)
        payments = recent_portal_payments(customer=customer)
    return _render(
        request,
        "portal/paid.html",
        {"token": token, "summary": summary, "payments": payments},
        customer=customer,
    )


# --- The gateway's own page (Stripe Checkout in setup mode) ------------------------------------------------


def _start_hosted_page(
    request: HttpRequest, token: str, link: PortalLink, customer: Customer, gateway: PaymentGateway
) -> HttpResponse:
    base = settings.PORTAL_BASE_URL.rstrip("/")
    try:
        session = services.portal_hosted_page_start(
            link=link,
            customer=customer,
            return_url=base + reverse("portal:setup-return"),
            cancel_url=base + reverse("portal:setup-cancelled"),
            gateway=gateway,
        )
    except GatewayError:
        return HttpResponseRedirect(_page_url(token, "setup_failed"), status=303)
    if session is None:
        return HttpResponseRedirect(_page_url(token, "unavailable"), status=303)
    response = HttpResponseRedirect(session.url, status=303)
    response.set_cookie(
        SETUP_COOKIE,
        signing.dumps({"t": token, "r": session.reference}, salt=SETUP_COOKIE_SALT),
        max_age=SETUP_COOKIE_MAX_AGE,
        path=SETUP_COOKIE_PATH,
        secure=request.is_secure(),
        httponly=True,
        samesite="Lax",  # sent on the top-level return from the gateway's page
    )
    return response


def _setup_cookie(request: HttpRequest) -> tuple[str, str] | None:
    try:
        value = signing.loads(
            request.COOKIES.get(SETUP_COOKIE, ""), salt=SETUP_COOKIE_SALT, max_age=SETUP_COOKIE_MAX_AGE
        )
        return str(value["t"]), str(value["r"])
    except (signing.BadSignature, KeyError, TypeError):
        return None


@portal_headers
@require_GET
def setup_return(request: HttpRequest) -> HttpResponse:
    """Back from the gateway's page. A GET changes nothing: this page posts to ``setup_complete`` (at once
    with JavaScript, or with the customer's click)."""
    remembered = _setup_cookie(request)
    if remembered is None:
        return _invalid(request, LinkProblem.EXPIRED)
    resolved = _resolve(remembered[0])
    if isinstance(resolved, LinkProblem):
        return _invalid(request, resolved)
    return _render(request, "portal/setup_return.html", {}, customer=resolved[1])


@portal_headers
@require_POST
@portal_csrf_protect
def setup_complete(request: HttpRequest) -> HttpResponse:
    remembered = _setup_cookie(request)
    if remembered is None:
        return _invalid(request, LinkProblem.EXPIRED)
    token, reference = remembered
    admitted = _admit_post(request, token)
    if isinstance(admitted, HttpResponse):
        return admitted
    link, customer = admitted
    gateway = get_gateway()
    try:
        outcome = services.portal_hosted_page_complete(
            link=link, customer=customer, reference=reference, gateway=gateway
        )
    except GatewayError:
        response = HttpResponseRedirect(_page_url(token, "setup_failed"), status=303)
    else:
        response = _after(outcome, token)
    finally:
        gateway.close()
    response.delete_cookie(SETUP_COOKIE, path=SETUP_COOKIE_PATH)
    return response


@portal_headers
@require_GET
def setup_cancelled(request: HttpRequest) -> HttpResponse:
    remembered = _setup_cookie(request)
    if remembered is None:
        return _invalid(request, LinkProblem.EXPIRED)
    response = HttpResponseRedirect(_page_url(remembered[0], OutcomeStatus.ABANDONED), status=303)
    response.delete_cookie(SETUP_COOKIE, path=SETUP_COOKIE_PATH)
    return response


# --- Without a token ---------------------------------------------------------------------------------------


@portal_headers
@require_http_methods(["GET", "POST"])
@portal_csrf_protect
def fresh_link(request: HttpRequest) -> HttpResponse:
    """ "Send me a fresh link". The answer is the same whether or not the address is known."""
    if request.method == "GET":
        return _render(request, "portal/fresh_link.html", {"form": FreshLinkForm()})
    form = FreshLinkForm(request.POST)
    address = request.POST.get("email", "").strip().lower()
    retry_after = rate_limited(
        [
            Limit("fresh-ip", client_ip(request), settings.PORTAL_FRESH_LINKS_PER_IP),
            Limit("fresh-address", address, settings.PORTAL_FRESH_LINKS_PER_ADDRESS),
        ]
    )
    if retry_after:
        return _too_many(request, retry_after)
    if not form.is_valid():
        return _render(request, "portal/fresh_link.html", {"form": form})
    services.portal_fresh_link_request(email=form.cleaned_data["email"])
    return _render(request, "portal/fresh_link.html", {"sent": True})
