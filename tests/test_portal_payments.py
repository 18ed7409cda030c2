"""Money through the portal: a new card (the simulated gateway's form, or a gateway's own page), pay now,
declines, double submissions, and the recovery credited to the channel the link came from.

The money path is the real one: the simulated gateway and its ledger (``SimulatedCharge``). Only the
hosted page itself is a test double (``HostedGateway``), since no gateway's page can run here.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.core import mail
from django.db import connections
from django.test import Client
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus, PaymentMethod
from dunning.gateways import PaymentMethodDetails, SetupSession
from dunning.gateways.simulated import SimulatedGateway
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseEvent,
    CaseEventKind,
    CaseState,
    DunningCase,
    PaymentAttempt,
    RecoveryChannel,
    SimulatedCharge,
    SimulatedGatewayRule,
)
from dunning.portal.services import OutcomeStatus, portal_payment_method_confirmed
from dunning.portal.tokens import portal_link_for
from dunning.services.staff import case_pause
from dunning.services.tick import run_tick
from notifications.models import Banner, Notification
from notifications.services import notifications_dispatch
from tests.factories import TEST_ACTOR, ContactFactory, InvoiceFactory, failed_invoice

pytestmark = pytest.mark.django_db
GOOD = {"number": "4242 4242 4242 4242", "expiry": "12/39"}
DECLINING = {"number": "4000 0000 0000 0002", "expiry": "12/39"}  # generic_decline (soft)
EXPIRED = {"number": "4000000000000069", "expiry": "12/39"}  # expired_card (hard)


class HostedGateway(SimulatedGateway):
    """The simulated gateway plus a hosted page for new methods, as Stripe Checkout in setup mode.

    The page is a stand-in (it only records what it was asked); charges go through the real simulated
    gateway and ledger.
    """

    hosted_page_origins = ("https://hosted.example",)
    started: ClassVar[list[dict[str, Any]]] = []
    confirmed: ClassVar[dict[str, PaymentMethodDetails | None]] = {}
    defaults: ClassVar[list[tuple[str, str]]] = []

    def start_payment_method_update(
        self, *, customer_ref: str, return_url: str, cancel_url: str, metadata: Mapping[str, str]
    ) -> SetupSession | None:
        reference = f"seti_{len(self.started) + 1}"
        self.started.append(
            {"customer_ref": customer_ref, "return_url": return_url, "cancel_url": cancel_url, **metadata}
        )
        return SetupSession(url=f"https://hosted.example/setup/{reference}", reference=reference)

    def complete_payment_method_update(self, *, reference: str) -> PaymentMethodDetails | None:
        return self.confirmed.get(reference)

    def set_default_payment_method(self, *, customer_ref: str, payment_method_ref: str) -> None:
        self.defaults.append((customer_ref, payment_method_ref))


@pytest.fixture
def hosted(settings):  # type: ignore[no-untyped-def]
    settings.PAYMENT_GATEWAY = "tests.test_portal_payments.HostedGateway"
    HostedGateway.started.clear()
    HostedGateway.confirmed.clear()
    HostedGateway.defaults.clear()
    return HostedGateway


def _page(response: Any) -> str:
    return html.unescape(response.content.decode())


def _link(invoice: Invoice, source: str = "email") -> str:
    url = portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source=source)
    return "/portal/" + url.split("/portal/")[1]


def _charges(invoice: Invoice) -> list[tuple[bool, str]]:
    return list(
        SimulatedCharge.objects.filter(invoice_ref=invoice.number)
        .order_by("id")
        .values_list("succeeded", "decline_code")
    )


def _portal_actions(case: DunningCase) -> list[str]:
    return list(
        CaseEvent.objects.filter(case=case, kind=CaseEventKind.PORTAL)
        .order_by("id")
        .values_list("details__action", flat=True)
    )


# --- A new card on the portal's own form (simulated gateway) -----------------------------------------------------


def test_a_declined_card_then_a_good_one_recovers_the_case_through_the_email_channel(client: Client) -> None:
    case, invoice, old_card = failed_invoice(card="pm_sim_4000000000009995")
    ContactFactory(customer=invoice.customer)
    run_tick(now=case.opened_at + timedelta(minutes=5))  # day 0: email and banner
    link = _link(invoice)

    declined = client.post(link + "card/", DECLINING)
    assert declined.status_code == 303 and declined["Location"] == link + "?result=declined"
    page = client.get(declined["Location"])
    assert "Your card was declined" in page.content.decode()
    assert "without giving a reason" in page.content.decode()  # generic_decline's customer message
    # A card that declines never replaces the card on file: it is kept, not made the default.
    default = PaymentMethod.objects.get(customer=invoice.customer, is_default=True)
    assert default.pk == old_card.pk
    assert PaymentMethod.objects.get(gateway_payment_method_id="pm_sim_4000000000000002").is_default is False
    case.refresh_from_db()
    assert case.state == CaseState.OPEN

    paid = client.post(link + "card/", GOOD)
    assert paid.status_code == 303 and paid["Location"] == link + "paid/"
    confirmation = _page(client.get(paid["Location"]))
    assert "Thank you, your payment went through" in confirmation and "Visa •••• 4242" in confirmation

    invoice.refresh_from_db()
    case.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert (case.state, case.recovery_channel, case.recovered_amount_minor) == (
        CaseState.RECOVERED,
        RecoveryChannel.EMAIL_PORTAL,
        4900,
    )
    attempts = list(PaymentAttempt.objects.filter(invoice=invoice).order_by("number"))
    assert [(a.source, a.status, a.decline_code) for a in attempts[1:]] == [
        (AttemptSource.CARD_UPDATED, AttemptStatus.FAILED, "generic_decline"),
        (AttemptSource.CARD_UPDATED, AttemptStatus.SUCCEEDED, ""),
    ]
    assert _charges(invoice) == [(False, "generic_decline"), (True, "")]
    assert not Banner.objects.filter(case_ref=case.pk, active=True).exists()
    assert Notification.objects.filter(case_ref=case.pk, template_key="recovered").count() == 1
    old_card.refresh_from_db()
    assert not old_card.is_default  # kept, no longer the default
    assert _portal_actions(case) == [
        "payment_method_updated",
        "outcome",
        "visit",
        "payment_method_updated",
        "outcome",
    ]


def test_a_banner_link_credits_the_banner(client: Client) -> None:
    case, invoice, _ = failed_invoice()
    client.post(_link(invoice, source="banner") + "card/", GOOD)
    case.refresh_from_db()
    assert case.recovery_channel == RecoveryChannel.BANNER_PORTAL


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"number": "", "expiry": ""}, "Enter your card number."),
        ({"number": "4242 4242 4242 4241", "expiry": "12/39"}, "This card number isn't valid"),
        ({"number": "4242abc", "expiry": "12/39"}, "12 to 19 digits"),
        ({"number": "4242424242424242", "expiry": "01/20"}, "This card has expired"),
        ({"number": "4242424242424242", "expiry": "13/39"}, "The month must be between 01 and 12"),
        ({"number": "4242424242424242", "expiry": "soon"}, "Enter the expiry date as MM/YY"),
    ],
)
def test_card_form_errors_are_explained_and_change_nothing(
    client: Client, data: dict[str, str], message: str
) -> None:
    _, invoice, _ = failed_invoice()
    response = client.post(_link(invoice) + "card/", data)
    assert response.status_code == 200
    page = _page(response)
    assert message in page
    assert 'aria-invalid="true"' in page and "Please check the card details" in page
    assert data["number"] == "" or data["number"] not in page  # a card number is never echoed back
    assert PaymentMethod.objects.filter(customer=invoice.customer).count() == 1
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1  # the initial failure only


@pytest.mark.parametrize("expiry", ["12/39", "12 / 2039", "1239", "12-39"])
def test_expiry_dates_are_accepted_as_people_type_them(client: Client, expiry: str) -> None:
    _, invoice, _ = failed_invoice()
    assert client.post(_link(invoice) + "card/", {**GOOD, "expiry": expiry}).status_code == 303
    method = PaymentMethod.objects.get(customer=invoice.customer, is_default=True)
    assert (method.exp_month, method.exp_year) == (12, 2039)


def test_the_same_hard_declined_card_is_not_charged_again(client: Client) -> None:
    case, invoice, _ = failed_invoice()
    link = _link(invoice)
    assert client.post(link + "card/", EXPIRED)["Location"].endswith("?result=declined")
    assert _charges(invoice) == [(False, "expired_card")]
    again = client.post(link + "card/", EXPIRED)
    assert again["Location"].endswith("?result=blocked")
    assert "This card can't be used" in _page(client.get(again["Location"]))
    assert _charges(invoice) == [(False, "expired_card")]  # invariant 4: never again on that card
    assert client.post(link + "card/", GOOD)["Location"].endswith("/paid/")


def test_a_new_card_unblocks_an_authentication_request(client: Client) -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4000002500003155", decline_code="authentication_required")
    page = _page(client.get(_link(invoice)))
    assert "confirm this payment" in page and "/pay/" not in page  # no off-session pay now
    assert client.post(_link(invoice) + "pay/")["Location"].endswith("?result=blocked")
    assert client.post(_link(invoice) + "card/", GOOD)["Location"].endswith("/paid/")


def test_a_customer_who_comes_to_pay_is_charged_whatever_the_state_of_the_case(client: Client) -> None:
    """Paused by staff, or exhausted after day 28: the invoice is open and the customer is here to pay."""
    paused, paused_invoice, _ = failed_invoice()
    case_pause(case=paused, actor=TEST_ACTOR, reason="customer on holiday")
    assert client.post(_link(paused_invoice) + "card/", GOOD)["Location"].endswith("/paid/")
    exhausted, exhausted_invoice, _ = failed_invoice()
    for day in range(1, 31):
        run_tick(now=exhausted.opened_at + timedelta(days=day))
    exhausted.refresh_from_db()
    assert exhausted.state == CaseState.EXHAUSTED
    page = _page(client.get(_link(exhausted_invoice)))
    assert "€49.00" in page
    assert client.post(_link(exhausted_invoice) + "card/", GOOD)["Location"].endswith("/paid/")
    for case, invoice in ((paused, paused_invoice), (exhausted, exhausted_invoice)):
        case.refresh_from_db()
        assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, RecoveryChannel.EMAIL_PORTAL)
        assert _charges(invoice)[-1] == (True, "")
    # Charged with the customer present: the gateway may ask them to authenticate.
    assert (
        PaymentAttempt.objects.filter(source=AttemptSource.CARD_UPDATED, customer_present=True).count() == 2
    )


# --- Pay now ----------------------------------------------------------------------------------------------------


def test_pay_now_charges_every_open_invoice_once_on_the_card_on_file(client: Client) -> None:
    case, invoice, _ = failed_invoice(card="pm_sim_4000000000009995")
    second = InvoiceFactory(customer=invoice.customer, amount_due_minor=1500, gateway="simulated")
    from dunning.services.cases import invoice_payment_failed

    other_case = invoice_payment_failed(invoice=second, actor=TEST_ACTOR, decline_code="insufficient_funds")
    # The customer topped up their account: the same card now goes through.
    SimulatedGatewayRule.objects.create(
        customer_external_id=invoice.customer.external_id, outcomes=["succeeded"]
    )
    response = client.post(_link(invoice, source="banner") + "pay/")
    assert response["Location"].endswith("/paid/")
    for item, its_case in ((invoice, case), (second, other_case)):
        item.refresh_from_db()
        its_case.refresh_from_db()  # type: ignore[union-attr]
        assert item.status == InvoiceStatus.PAID
        assert its_case.recovery_channel == RecoveryChannel.BANNER_PORTAL  # type: ignore[union-attr]
        assert _charges(item) == [(True, "")]
    assert set(
        PaymentAttempt.objects.filter(source=AttemptSource.PORTAL).values_list("status", flat=True)
    ) == {AttemptStatus.SUCCEEDED}


def test_pay_now_declined_shows_the_reason_and_the_way_out(client: Client) -> None:
    _, invoice, _ = failed_invoice(card="pm_sim_4000000000009995")
    response = client.post(_link(invoice) + "pay/")
    assert response["Location"].endswith("?result=declined")
    page = _page(client.get(response["Location"]))
    assert "Your card was declined" in page and "not enough funds" in page and 'name="number"' in page
    attempt = PaymentAttempt.objects.get(invoice=invoice, source=AttemptSource.PORTAL)
    assert (attempt.status, attempt.decline_code) == (AttemptStatus.FAILED, "insufficient_funds")


def test_pay_now_is_not_offered_on_a_hard_declined_card(client: Client) -> None:
    _, invoice, _ = failed_invoice(card="pm_sim_4000000000009987", decline_code="lost_card")
    page = _page(client.get(_link(invoice)))
    assert "/pay/" not in page and "can't be charged any more" in page
    assert client.post(_link(invoice) + "pay/")["Location"].endswith("?result=blocked")
    assert _charges(invoice) == []


def test_a_double_submission_charges_once(client: Client) -> None:
    case, invoice, _ = failed_invoice()
    link = _link(invoice)
    first, second = client.post(link + "card/", GOOD), client.post(link + "card/", GOOD)
    assert first["Location"] == second["Location"] == link + "paid/"
    assert client.post(link + "pay/")["Location"] == link + "paid/"  # nothing left: no charge at all
    assert "Thank you, your payment went through" in _page(client.get(link + "paid/"))
    assert _charges(invoice) == [(True, "")]
    assert PaymentAttempt.objects.filter(invoice=invoice, status=AttemptStatus.SUCCEEDED).count() == 1


def test_nothing_due_pay_now_says_so(client: Client) -> None:
    _, invoice, _ = failed_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.VOID)
    response = client.post(_link(invoice) + "pay/")
    assert response["Location"].endswith("/paid/")
    assert "There's nothing to pay" in _page(client.get(response["Location"]))


def test_posts_need_the_csrf_token(client: Client) -> None:
    _, invoice, _ = failed_invoice()
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(_link(invoice) + "pay/").status_code == 403
    assert strict.post(_link(invoice) + "card/", GOOD).status_code == 403
    assert _charges(invoice) == []


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        # What browsers send from our own page under Referrer-Policy: no-referrer.
        ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "same-origin"}, True),
        ({"HTTP_ORIGIN": "null"}, True),  # a browser without Fetch metadata: the token decides
        ({"HTTP_ORIGIN": "http://testserver", "HTTP_SEC_FETCH_SITE": "same-origin"}, True),
        # A sandboxed frame elsewhere also sends null, but says it is cross-site.
        ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "cross-site"}, False),
        ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "same-site"}, False),
        ({"HTTP_ORIGIN": "https://evil.example", "HTTP_SEC_FETCH_SITE": "cross-site"}, False),
    ],
)
def test_the_csrf_check_accepts_the_null_origin_of_a_no_referrer_page_only_from_itself(
    headers: dict[str, str], allowed: bool
) -> None:
    _, invoice, _ = failed_invoice(card="pm_sim_4242424242424242")
    strict = Client(enforce_csrf_checks=True)
    page = strict.get(_link(invoice)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = strict.post(_link(invoice) + "pay/", {"csrfmiddlewaretoken": token}, **headers)
    assert (response.status_code == 303) is allowed
    assert response["Referrer-Policy"] == "no-referrer"  # refusals carry the portal's headers too
    assert _charges(invoice) == ([(True, "")] if allowed else [])
    # The token is still required, whatever the headers.
    if allowed:
        assert Client(enforce_csrf_checks=True).post(_link(invoice) + "pay/", **headers).status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("dunning_seeds")
def test_two_simultaneous_pay_now_clicks_charge_once() -> None:
    _, invoice, _ = failed_invoice(card="pm_sim_4242424242424242")
    link = _link(invoice)
    barrier = threading.Barrier(4)
    locations: list[str] = []

    def click() -> None:
        try:
            barrier.wait()
            locations.append(Client().post(link + "pay/")["Location"])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _charges(invoice) == [(True, "")]
    assert PaymentAttempt.objects.filter(invoice=invoice, source=AttemptSource.PORTAL).count() == 1
    # Every click lands on the confirmation, or (while the first is in flight) on "we're confirming".
    assert set(locations) <= {link + "paid/", link + "?result=pending"} and len(locations) == 4


# --- A gateway with its own page (Stripe Checkout in setup mode) ------------------------------------------------


def test_the_hosted_page_round_trip_saves_the_method_and_pays(client: Client, hosted, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_BASE_URL = "https://billing.example.com"
    case, invoice, _ = failed_invoice()
    link = _link(invoice, source="banner")
    page = _page(client.get(link))
    assert 'name="number"' not in page and "Update payment method" in page  # a button, no card fields

    response = client.post(link + "card/")
    assert response.status_code == 303 and response["Location"] == "https://hosted.example/setup/seti_1"
    assert "form-action 'self' https://hosted.example" in response["Content-Security-Policy"]
    started = hosted.started[0]
    assert started["return_url"] == "https://billing.example.com/portal/setup/return/"
    assert started["cancel_url"] == "https://billing.example.com/portal/setup/cancelled/"
    assert (started["customer"], started["channel"]) == (invoice.customer.external_id, "banner_portal")
    cookie = response.cookies["portal_setup"]
    assert cookie["httponly"] and cookie["path"] == "/portal/setup/" and cookie["samesite"] == "Lax"
    assert link.split("/")[2] not in str(started)  # the token never goes to the gateway

    # The customer confirms a card on the gateway's page and comes back (a GET: it changes nothing).
    hosted.confirmed["seti_1"] = PaymentMethodDetails(
        "pm_sim_4242424242424242", "card", "visa", "4242", 8, 2031
    )
    back = client.get("/portal/setup/return/")
    assert back.status_code == 200 and 'action="/portal/setup/complete/"' in back.content.decode()
    assert _charges(invoice) == []

    done = client.post("/portal/setup/complete/")
    assert done["Location"] == link + "paid/"
    assert done.cookies["portal_setup"].value == ""  # forgotten
    case.refresh_from_db()
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, RecoveryChannel.BANNER_PORTAL)
    assert hosted.defaults == [(invoice.customer.gateway_customer_id, "pm_sim_4242424242424242")]

    # The gateway's webhook confirms the same method later: nothing is charged twice.
    outcome = portal_payment_method_confirmed(
        customer=invoice.customer,
        details=hosted.confirmed["seti_1"],
        channel=RecoveryChannel.BANNER_PORTAL,
        actor=Actor.webhook("stripe"),
    )
    assert outcome.status == OutcomeStatus.PAID
    assert _charges(invoice) == [(True, "")]
    assert "hosted_page_opened" in _portal_actions(case)


def test_the_webhook_first_then_the_return_charges_once(client: Client, hosted) -> None:  # type: ignore[no-untyped-def]
    _, invoice, _ = failed_invoice()
    client.post(_link(invoice) + "card/")
    details = PaymentMethodDetails("pm_sim_4000000000000002", "card", "visa", "0002", 8, 2031)
    hosted.confirmed["seti_1"] = details
    webhook = portal_payment_method_confirmed(
        customer=invoice.customer, details=details, channel="email_portal", actor=Actor.webhook("stripe")
    )
    assert webhook.status == OutcomeStatus.DECLINED
    # The customer's browser arrives after the webhook: it reports the decline, and charges nothing more.
    assert client.post("/portal/setup/complete/")["Location"].endswith("?result=declined")
    assert _charges(invoice) == [(False, "generic_decline")]


def test_coming_back_without_a_method_or_cancelling_changes_nothing(client: Client, hosted) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice()
    link = _link(invoice)
    client.post(link + "card/")
    assert client.post("/portal/setup/complete/")["Location"] == link + "?result=abandoned"
    client.post(link + "card/")
    cancelled = client.get("/portal/setup/cancelled/")
    assert cancelled["Location"] == link + "?result=abandoned"
    assert "No new card was added" in _page(client.get(cancelled["Location"]))
    assert PaymentMethod.objects.filter(customer=invoice.customer).count() == 1
    assert _charges(invoice) == []
    assert "hosted_page_abandoned" in _portal_actions(case)


def test_the_return_pages_need_the_cookie(client: Client, hosted) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/portal/setup/return/").status_code == 410
    assert client.post("/portal/setup/complete/").status_code == 410
    assert client.get("/portal/setup/cancelled/").status_code == 410
    client.cookies["portal_setup"] = "forged"
    assert client.post("/portal/setup/complete/").status_code == 410


def test_a_customers_receipt_goes_out_once_and_reminders_stop(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    case, invoice, _ = failed_invoice()
    ContactFactory(customer=invoice.customer, email="ap@customer.example")
    run_tick(now=case.opened_at + timedelta(minutes=5))
    client.post(_link(invoice) + "card/", GOOD)
    moment = timezone.now()
    for day in range(1, 30, 3):
        run_tick(now=moment + timedelta(days=day))
    # In the afternoon (customer's time), so quiet hours hold nothing back.
    notifications_dispatch(notification_ids=None, now=(moment + timedelta(days=31)).replace(hour=13))
    sent = list(Notification.objects.filter(status="sent").values_list("template_key", flat=True))
    assert sent == ["recovered"]
    assert len(mail.outbox) == 1 and "Thank you" in mail.outbox[0].subject
