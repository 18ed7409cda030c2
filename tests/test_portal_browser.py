"""The payment portal in a real browser: Debian's Chromium, driven by Playwright, on a phone-sized screen
(390×844), against the live server.

From the dunning email caught by the test, through a declined card, to a recovered case; an
accessibility smoke check; the keyboard; an expired link and its fresh one; and a round trip through a
gateway's own page. Screenshots of each screen go to ``test-output/portal/<test name>/``.

Under ``CI=true`` a missing Playwright or Chromium fails these tests instead of skipping them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core import mail
from django.utils import timezone

from customers.models import InvoiceStatus
from dunning.gateways import PaymentMethodDetails, SetupSession
from dunning.gateways.simulated import SimulatedGateway
from dunning.models import AttemptStatus, CaseState, PaymentAttempt, RecoveryChannel, SimulatedCharge
from dunning.portal.tokens import portal_link_for
from dunning.services.tick import run_tick
from notifications.default_templates import install_default_templates
from notifications.models import Banner, MessageTemplate, Notification
from notifications.services import notifications_dispatch
from tests.factories import ContactFactory, failed_invoice
from tests.support.browser import LoopbackSite, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dunning_seeds", "message_templates"),
]
PHONE = {"width": 390, "height": 844}
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "portal"
LINK = re.compile(r"https?://\S+?/portal/[^/\s]+/")


@pytest.fixture
def message_templates() -> None:
    """The shipped email templates (a data migration's rows, emptied by earlier transactional tests)."""
    install_default_templates(MessageTemplate)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    tab = context.new_page()
    errors: list[str] = []

    def on_console(message: Any) -> None:
        # A CSP violation (an inline script or style slipping in) shows up as a console error. Failed loads
        # are checked below, by resource: pages for dead links answer 404/410 on purpose.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def on_response(response: Any) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            errors.append(f"{response.status} {response.url}")

    tab.on("console", on_console)
    tab.on("response", on_response)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
    assert errors == []


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``shot("declined")`` saves the whole page as test-output/portal/<test>/NN-declined.png."""
    folder = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    taken: list[Path] = []

    def take(name: str) -> Path:
        target = folder / f"{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(target), full_page=True)
        taken.append(target)
        return target

    return take


@pytest.fixture
def portal_settings(settings, live_server):  # type: ignore[no-untyped-def]
    settings.PORTAL_BASE_URL = live_server.url  # links in emails point at the live server
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Equal start and end switch quiet hours off, so the test's emails leave whatever the hour.
    settings.NOTIFICATIONS_QUIET_HOURS_START = settings.NOTIFICATIONS_QUIET_HOURS_END = 0
    return settings


def _dispatch(at: timedelta = timedelta(minutes=5)) -> None:
    """Send what is due by then (the tick above ran a minute ahead of the clock)."""
    notifications_dispatch(notification_ids=None, now=timezone.now() + at)


def _fill_card(page: Any, number: str, expiry: str = "12/39") -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry date (MM/YY)").fill(expiry)
    page.get_by_role("button", name="Update payment method").click()


A11Y_PROBLEMS = """() => {
  const problems = [];
  const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.value || '').trim();
  if (!document.documentElement.lang) problems.push('html has no lang');
  const h1 = document.querySelectorAll('h1');
  if (h1.length !== 1) problems.push(`${h1.length} h1 elements`);
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (el.labels && el.labels.length && name(el.labels[0])) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby');
    if (!labelled) problems.push(`unlabelled ${el.name || el.id}`);
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (!name(el)) problems.push(`nameless ${el.outerHTML.slice(0, 60)}`);
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push(`img without alt ${img.src}`);
  }
  for (const el of document.querySelectorAll('main button, main input:not([type=hidden])')) {
    const box = el.getBoundingClientRect();
    if (box.height < 44) problems.push(`tap target ${el.name || el.textContent.trim()} is ${box.height}px tall`);
  }
  if (document.documentElement.scrollWidth > window.innerWidth) problems.push('scrolls sideways');
  // Text contrast (WCAG AA): 4.5:1, or 3:1 for large text.
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    const fg = lum(rgb(style.color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) problems.push(`contrast ${ratio.toFixed(2)} for "${el.textContent.trim().slice(0, 30)}"`);
  }
  return problems;
}"""


def test_from_the_dunning_email_to_a_recovered_case(page, shot, portal_settings, live_server) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice(card="pm_sim_4000000000009995", failed_at=timezone.now())
    ContactFactory(customer=invoice.customer, email="ap@customer.example")
    run_tick(now=timezone.now() + timedelta(minutes=1))  # day 0: the first email and the banner
    _dispatch()
    [email] = mail.outbox
    assert email.to == ["Billing desk <ap@customer.example>"]
    link = LINK.search(email.body).group(0)  # type: ignore[union-attr]
    assert link.startswith(f"{live_server.url}/portal/")
    banner = Banner.objects.get(case_ref=case.pk)
    assert (
        banner.active and banner.cta_url.startswith(f"{live_server.url}/portal/") and banner.cta_url != link
    )

    page.goto(link)
    assert page.locator("h1").inner_text() == "Update your payment method"
    assert page.get_by_text("Amount due").is_visible()
    assert "€49.00" in page.locator(".summary__value--amount").inner_text()
    assert "not enough funds" in page.locator("#decline-reason").inner_text()
    assert "Visa •••• 9995" in page.locator(".summary").inner_text()
    shot("email-link")

    _fill_card(page, "4000 0000 0000 0002")
    page.wait_for_url(re.compile(r"\?result=declined$"))
    alert = page.get_by_role("alert")
    assert "Your card was declined" in alert.inner_text()
    assert "without giving a reason" in alert.inner_text()
    assert page.evaluate("document.activeElement.classList.contains('notice')")  # read out first
    # The card that declined did not replace the one on file: the page still names the old card.
    assert "Visa •••• 9995" in page.locator(".summary").inner_text()
    assert "0002" not in page.locator(".summary").inner_text()
    shot("declined")

    _fill_card(page, "4242 4242 4242 4242")
    page.wait_for_url(re.compile(r"/paid/$"))
    assert page.locator("h1").inner_text() == "Thank you, your payment went through"
    assert "Visa •••• 4242" in page.locator("main").inner_text()
    shot("paid")

    invoice.refresh_from_db()
    case.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, RecoveryChannel.EMAIL_PORTAL)
    assert list(
        PaymentAttempt.objects.filter(invoice=invoice).order_by("number").values_list("status", flat=True)
    ) == [AttemptStatus.FAILED, AttemptStatus.FAILED, AttemptStatus.SUCCEEDED]
    assert SimulatedCharge.objects.filter(invoice_ref=invoice.number, succeeded=True).count() == 1
    banner.refresh_from_db()
    assert not banner.active and banner.cleared_at is not None

    # The rest of the schedule does nothing: no reminder, only the receipt.
    moment = timezone.now()
    for day in (1, 3, 4, 7, 8, 14, 21, 28, 30):
        run_tick(now=moment + timedelta(days=day))
    _dispatch(timedelta(days=31))
    assert [m.subject for m in mail.outbox[1:]] == ["Thank you: your Example SaaS payment went through"]
    assert not Notification.objects.filter(status="queued").exists()

    # Reopening the email's link later shows that nothing is due.
    page.goto(link)
    assert page.locator("h1").inner_text() == "Your payment details"
    shot("link-after-payment")


def test_accessibility_smoke_check_at_phone_and_small_phone_widths(
    page, shot, portal_settings, live_server
) -> None:  # type: ignore[no-untyped-def]
    _, invoice, _ = failed_invoice(card="pm_sim_4000000000009995")
    url = portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source="email")
    page.goto(url)
    assert page.evaluate(A11Y_PROBLEMS) == []
    shot("page")
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate(A11Y_PROBLEMS) == []
    shot("page-360")

    # A form error: the summary takes the focus, and each field says what is wrong.
    page.set_viewport_size(PHONE)
    _fill_card(page, "4242 4242 4242 4241", "13/39")
    page.wait_for_selector(".field--error")
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"
    number = page.get_by_label("Card number")
    assert number.get_attribute("aria-invalid") == "true"
    assert "isn't valid" in page.locator(f"#{number.get_attribute('aria-describedby')}").inner_text()
    assert page.evaluate(A11Y_PROBLEMS) == []
    shot("form-errors")

    page.goto(f"{live_server.url}/portal/not-a-real-token/")
    assert page.evaluate(A11Y_PROBLEMS) == []
    shot("invalid-link")


def test_the_page_works_with_the_keyboard_alone(page, portal_settings) -> None:  # type: ignore[no-untyped-def]
    _, invoice, _ = failed_invoice(card="pm_sim_4000000000009995")
    page.goto(portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source="banner"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    for _ in range(10):  # on to the first field of the form
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "number":
            break
    assert page.evaluate("document.activeElement.name") == "number"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    page.keyboard.type("4242424242424242")
    page.keyboard.press("Tab")
    page.keyboard.type("1239")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/paid/$"))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.dunning_case.recovery_channel == RecoveryChannel.BANNER_PORTAL


def test_an_expired_link_leads_to_a_fresh_one_by_email(page, shot, portal_settings, live_server) -> None:  # type: ignore[no-untyped-def]
    _, invoice, _ = failed_invoice()
    ContactFactory(customer=invoice.customer, email="ap@customer.example")
    old = portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source="email")
    portal_settings.PORTAL_LINK_MAX_AGE_DAYS = 0
    page.goto(old)
    assert page.locator("h1").inner_text() == "This link has expired"
    shot("expired")
    page.get_by_label("Your billing email address").fill("ap@customer.example")
    page.get_by_role("button", name="Send me a fresh link").click()
    page.wait_for_selector("text=Check your inbox")
    shot("fresh-link-sent")

    portal_settings.PORTAL_LINK_MAX_AGE_DAYS = 14
    _dispatch()  # the task ran after the response; the email leaves now
    [email] = mail.outbox
    fresh = LINK.search(email.body).group(0)  # type: ignore[union-attr]
    page.goto(fresh)
    assert page.locator("h1").inner_text() == "Update your payment method"
    shot("fresh-link-opened")


class _HostedPage(LoopbackSite):
    """A stand-in for the gateway's page on another origin: a form whose button returns to our site."""

    def __init__(self) -> None:
        self.return_url = ""
        super().__init__(
            lambda: (
                '<!doctype html><html lang="en"><head><title>Processor</title></head><body><main>'
                "<h1>Card details</h1>"
                f'<form method="get" action="{self.return_url}"><button>Save card</button></form>'
                "</main></body></html>"
            ),
            # "localhost" rather than 127.0.0.1: another origin than the live server's, as a gateway's page is.
            host="localhost",
        )


class BrowserHostedGateway(SimulatedGateway):
    """The simulated gateway and ledger, plus a hosted page at ``origin`` (set by the test)."""

    hosted_page_origins: ClassVar[tuple[str, ...]] = ()
    page: ClassVar[_HostedPage | None] = None

    def start_payment_method_update(
        self, *, customer_ref: str, return_url: str, cancel_url: str, metadata: Mapping[str, str]
    ) -> SetupSession | None:
        assert self.page is not None
        self.page.return_url = return_url
        return SetupSession(url=f"{self.page.origin}/checkout/seti_42", reference="seti_42")

    def complete_payment_method_update(self, *, reference: str) -> PaymentMethodDetails | None:
        assert reference == "seti_42"
        return PaymentMethodDetails("pm_sim_5555555555554444", "card", "mastercard", "4444", 9, 2032)


@pytest.fixture
def hosted_page(portal_settings) -> Iterator[_HostedPage]:  # type: ignore[no-untyped-def]
    hosted = _HostedPage()
    BrowserHostedGateway.page = hosted
    BrowserHostedGateway.hosted_page_origins = (hosted.origin,)
    portal_settings.PAYMENT_GATEWAY = "tests.test_portal_browser.BrowserHostedGateway"
    yield hosted
    hosted.close()


def test_a_round_trip_through_the_gateways_own_page(page, shot, hosted_page, live_server) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice()
    page.goto(portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source="email"))
    assert page.get_by_label("Card number").count() == 0  # the gateway's page takes the card, not ours
    shot("button")
    page.get_by_role("button", name="Update payment method").click()
    # The CSP's form-action lets this one redirect through, to the gateway's origin only.
    page.wait_for_url(f"{hosted_page.origin}/checkout/seti_42")
    shot("gateway-page")
    page.get_by_role("button", name="Save card").click()
    # Back on our site, the return page confirms the card by itself (portal.js posts its form).
    page.wait_for_url(re.compile(r"/paid/$"))
    assert "Mastercard •••• 4444" in page.locator("main").inner_text()
    shot("paid")
    case.refresh_from_db()
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, RecoveryChannel.EMAIL_PORTAL)
    assert SimulatedCharge.objects.filter(invoice_ref=invoice.number).count() == 1


def test_a_customer_back_after_the_automation_gave_up_is_charged_at_once_on_a_laptop(
    browser, portal_settings, live_server, request
) -> None:  # type: ignore[no-untyped-def]
    """Day 30: the case is exhausted, the invoice still open. The page says the new card is charged right
    away, and it is: the case is recovered. At 1440×900, with screenshots."""
    case, invoice, _ = failed_invoice(
        card="pm_sim_4000000000009995", failed_at=timezone.now() - timedelta(days=31)
    )
    for day in range(0, 32):
        run_tick(now=case.opened_at + timedelta(days=day, hours=1))
    case.refresh_from_db()
    assert case.state == CaseState.EXHAUSTED
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    folder = OUTPUT / "exhausted-desktop"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source="email"))
        assert "€49.00" in page.locator(".summary__value--amount").inner_text()
        page.screenshot(path=str(folder / "01-exhausted.png"), full_page=True)
        _fill_card(page, "4242 4242 4242 4242")
        page.wait_for_url(re.compile(r"/paid/$"))
        page.screenshot(path=str(folder / "02-paid.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    finally:
        context.close()
    case.refresh_from_db()
    invoice.refresh_from_db()
    assert (case.state, invoice.status) == (CaseState.RECOVERED, InvoiceStatus.PAID)
