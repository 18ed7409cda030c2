"""Staff sign-in in Chromium: the first sign-in of a superuser through the password, the authenticator
enrolment (the code computed here from the key the page shows, as an app would) and the backup codes; then
the admin's pages under the admin's CSP, with their scripts working and no violation reported.

Screenshots at 1440×900 and 390×844 go to ``test-output/staff/``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from dunning.models import DunningPolicy
from notifications.default_templates import install_default_templates
from notifications.models import MessageTemplate
from reporting.services import rollups_refresh
from tests.factories import failed_invoice
from tests.support.browser import chromium
from tests.support.staff import StaffClient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "staff"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# Every CSP violation, in any frame, is recorded before the page's own scripts run.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def watched(browser: Any, live_server: Any) -> Iterator[tuple[Any, list[str]]]:
    """A desktop page that records console errors, failed requests and CSP violations."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.add_init_script(WATCH_CSP)
    problems: list[str] = []
    # A CSP violation shows up as a console error; failed loads are checked by response, below.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    # The admin has no favicon: Chromium's own request for one is not the page's.
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status}: {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.set_default_timeout(15_000)
    yield page, problems
    context.close()


def screenshots(page: Any, name: str) -> None:
    """The page at 1440×900, then at 390×844, then back."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}-1440x900.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(OUTPUT / f"{name}-390x844.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def code_for(secret: str, *, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for this key now (RFC 6238: SHA-1, 6 digits, 30 seconds)."""
    key = base64.b32decode(secret.replace(" ", "") + "=" * (-len(secret.replace(" ", "")) % 8))
    totp = TOTP(key, step=30, t0=0, digits=6)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def no_violations(page: Any) -> list[str]:
    return [v for frame in page.frames for v in (frame.evaluate("window.__cspViolations || []") or [])]


def test_first_sign_in_enrols_an_authenticator_then_opens_the_admin(watched, live_server) -> None:  # type: ignore[no-untyped-def]
    page, problems = watched
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "a-long-local-password")
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-local-password")
    screenshots(page, "01-sign-in")
    page.click("input[type=submit]")

    page.wait_for_url("**/admin/mfa/enrol/**")
    assert page.locator("img.mfa-qr").evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.locator("img.mfa-qr").get_attribute("src").startswith("data:image/svg+xml;base64,")
    secret = page.locator("#mfa-secret").inner_text()
    screenshots(page, "02-enrol")

    page.fill("#id_code", "000000")
    page.click("input[type=submit]")
    assert "That code is not right" in page.locator(".errorlist").inner_text()
    TOTPDevice.objects.filter(user=user).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    page.fill("#id_code", code_for(secret))
    page.click("input[type=submit]")

    codes = page.locator("#mfa-codes code").all_inner_texts()
    assert len(codes) == 10
    screenshots(page, "03-backup-codes")
    page.get_by_role("link", name="I have saved them: continue").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.get_by_role("heading", name="Recover failed payments").is_visible()
    screenshots(page, "04-admin")

    # A second sign-in asks for a code (the next one: each code works once).
    page.locator("#logout-form button").click()
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-local-password")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/mfa/?next=**")
    screenshots(page, "05-verify")
    page.fill("#id_code", code_for(secret, steps_ahead=1))
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert no_violations(page) == []
    assert problems == []


def test_the_admin_pages_work_under_the_csp(watched, live_server, dunning_seeds) -> None:  # type: ignore[no-untyped-def]
    page, problems = watched
    install_default_templates(MessageTemplate)
    case, invoice, _ = failed_invoice()
    failed_invoice()
    rollups_refresh(full=True)
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client = StaffClient()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )

    def visit(url: str) -> None:
        response = page.goto(live_server.url + url)
        assert response.status == 200, url
        pass
        page.wait_for_load_state("load")

    # A changelist: selecting a row brings the actions bar's counter (actions.js).
    visit(reverse("admin:dunning_dunningcase_changelist"))
    page.locator("input.action-select").first.check()
    assert "1 of 2 selected" in page.locator(".action-counter").inner_text()
    screenshots(page, "10-case-queue")

    # The case page: its timeline strip and staff actions.
    visit(reverse("admin:dunning_dunningcase_change", args=[case.pk]))
    assert page.get_by_role("link", name="Retry now").is_visible()

    # A change form with inlines (inlines.js adds the "Add another" links) and date widgets (calendar.js).
    visit(reverse("admin:customers_customer_change", args=[invoice.customer_id]))
    before = page.locator("#contacts-group tbody tr.form-row").count()
    page.locator("#contacts-group .add-row a").click()
    assert page.locator("#contacts-group tbody tr.form-row").count() == before + 1
    visit(reverse("admin:customers_invoice_change", args=[invoice.pk]))
    assert page.locator(".datetimeshortcuts").count() > 0
    visit(reverse("admin:dunning_dunningpolicy_change", args=[DunningPolicy.objects.get(name="Default").pk]))
    assert page.locator("#steps-group").is_visible()

    # The email preview: a sandboxed srcdoc frame, inheriting the policy, styled inline as emails are.
    template = MessageTemplate.objects.get(key="failure_1", locale="en")
    visit(reverse("admin:notifications_messagetemplate_preview", args=[template.pk]))
    frame = page.frame_locator("iframe[srcdoc]")
    background = frame.locator("body").evaluate("body => getComputedStyle(body).backgroundColor")
    assert background == "rgb(246, 248, 250)"  # the template's inline style applied

    # The portal link page and its copy button (admin-copy.js).
    visit(reverse("admin:dunning_dunningcase_portal_link", args=[case.pk]))
    page.get_by_role("button", name="Make a link to copy").click()
    page.get_by_role("button", name="Copy").click()
    # The label changes when the clipboard's promise settles: wait for it rather than race it.
    page.get_by_role("button", name="Copied").wait_for(state="visible", timeout=5000)

    # The reports: Chart.js draws every chart.
    visit(reverse("reporting:dashboard"))
    page.wait_for_function("() => window.Chart !== undefined")
    charts = page.eval_on_selector_all(
        "canvas[data-chart]", "canvases => canvases.map(c => Boolean(window.Chart.getChart(c)))"
    )
    assert charts and all(charts)
    screenshots(page, "11-reports")

    assert no_violations(page) == []
    assert problems == []
