"""The staff "Portal link" page in Chromium, at 1440×900 and 390×844: each of its three buttons works.

Chromium posts ``Origin: null`` from a page served with ``Referrer-Policy: no-referrer``, which Django's CSRF
check refuses ("Origin checking failed - null"); a test client never sends an Origin, so only a real browser
shows it. Screenshots go to ``test-output/admin/<test>/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from customers.models import AuditEvent
from dunning.portal.tokens import portal_token_read
from notifications.default_templates import install_default_templates
from notifications.models import MessageTemplate, Notification
from tests.factories import ContactFactory, failed_invoice
from tests.support.browser import admin_tab, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dunning_seeds"),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_each_button_of_the_portal_link_page_works_in_a_browser(
    browser, live_server, settings, request, size
) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_BASE_URL = live_server.url
    install_default_templates(MessageTemplate)
    case, invoice, _ = failed_invoice()
    customer = invoice.customer
    ContactFactory(customer=customer, email="ap@customer.example")
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    page_url = live_server.url + reverse("admin:customers_customer_portal_link", args=[customer.pk])

    with admin_tab(browser, live_server, user, size=size, folder="admin", test_name=request.node.name) as tab:
        page = tab.page
        answers: list[tuple[str, int, str]] = []
        page.on(
            "response",
            lambda r: (
                answers.append((r.request.method, r.status, r.headers.get("referrer-policy", "")))
                if "/portal-link/" in r.url
                else None
            ),
        )
        page.goto(page_url)
        tab.shot("portal-link-page")
        assert tab.overflow() == 0

        # 1. Make a link to copy: the next page shows one link to this customer, made by staff.
        page.get_by_role("button", name="Make a link to copy").click()
        page.wait_for_selector("input[readonly]")
        link = page.locator("input[readonly]").input_value()
        token = portal_token_read(re.search(r"/portal/([^/]+)/$", link).group(1))  # type: ignore[union-attr]
        assert (token.customer_id, token.source) == (customer.pk, "staff")
        tab.shot("link-to-copy")
        assert tab.overflow() == 0

        # 2. Email a fresh link: back on the customer's page, with the confirmation.
        page.goto(page_url)
        page.get_by_role("button", name="Email a fresh link").click()
        page.wait_for_selector("ul.messagelist")
        assert "Queued 1 email(s) with a fresh portal link." in page.locator("ul.messagelist").inner_text()
        assert Notification.objects.filter(
            template_key="portal_link", recipient="ap@customer.example"
        ).exists()
        tab.shot("emailed")

        # 3. Revoke all links: the link made above stops working.
        page.goto(page_url)
        page.get_by_role("button", name="Revoke all links").click()
        page.wait_for_selector("ul.messagelist")
        assert "Every portal link sent so far stopped working." in page.locator("ul.messagelist").inner_text()
        assert page.goto(link).status == 410
        tab.shot("revoked-link")

        posts = [status for method, status, _ in answers if method == "POST"]
        assert posts == [200, 302, 302], answers  # no 403 from the CSRF check
        assert {policy for _, _, policy in answers} == {"same-origin"}
        assert (
            AuditEvent.objects.filter(
                action__in=["portal.link_issued", "portal.link_emailed", "portal.links_revoked"]
            ).count()
            == 3
        )
        # The revoked link answers 410 on purpose; anything else failing (a favicon too) is a problem.
        assert [p for p in tab.problems if "410" not in p] == []
