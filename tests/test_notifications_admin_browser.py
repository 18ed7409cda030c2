"""Notification pages of the admin in Chromium, at 1440×900 and 390×844: the template preview shows the
rendered email, and the local mailbox shows what was sent. Screenshots go to ``test-output/admin/<test>/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from notifications.default_templates import install_default_templates
from notifications.models import MessageTemplate
from tests.support.browser import admin_tab, chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SIZES = ["desktop", "phone"]


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def boss():  # type: ignore[no-untyped-def]
    install_default_templates(MessageTemplate)
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.mark.parametrize("size", SIZES)
def test_the_template_preview_shows_the_rendered_email(browser, live_server, boss, request, size) -> None:  # type: ignore[no-untyped-def]
    template = MessageTemplate.objects.get(key="failure_1", locale="en")
    url = live_server.url + reverse("admin:notifications_messagetemplate_preview", args=[template.pk])
    with admin_tab(browser, live_server, boss, size=size, folder="admin", test_name=request.node.name) as tab:
        tab.page.goto(url)
        email = tab.page.frame_locator("iframe[title='HTML part of the email']").locator("body")
        text = email.inner_text()
        assert "We tried to collect €49.00 for invoice INV-004217" in text
        assert "Update your payment method" in text
        button = email.get_by_role("link", name="Update your payment method")
        assert button.get_attribute("href").endswith("/portal/sample-token/")  # type: ignore[union-attr]
        tab.shot("preview")
        assert tab.overflow() == 0
        assert tab.problems == []


@pytest.mark.parametrize("size", SIZES)
def test_the_local_mailbox_shows_sent_emails(
    browser, live_server, boss, settings, tmp_path, request, size
) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "notifications.local_mailbox.LocalMailboxBackend"
    settings.LOCAL_MAILBOX_DIR = tmp_path / "mail"
    template = MessageTemplate.objects.get(key="failure_2", locale="en")
    message = EmailMultiAlternatives(
        "Action needed: your payment of €49.00 is still outstanding",
        "Text part",
        "billing@example.com",
        ["Accounts Nimbus Logistics <billing@nimbuslogistics.example>"],
    )
    message.attach_alternative(template.body_html.replace("{{ amount }}", "€49.00"), "text/html")
    message.send()
    with admin_tab(browser, live_server, boss, size=size, folder="admin", test_name=request.node.name) as tab:
        tab.page.goto(live_server.url + reverse("admin:index"))
        tab.page.get_by_role("link", name="Sent mail (local)").click()
        tab.shot("mailbox")
        assert tab.overflow() == 0
        tab.page.get_by_role(
            "link", name="Action needed: your payment of €49.00 is still outstanding"
        ).click()
        email = tab.page.frame_locator("iframe[title='HTML part of the email']").locator("body")
        assert "Our second attempt to collect €49.00" in email.inner_text()
        tab.shot("message")
        assert tab.overflow() == 0
        assert tab.problems == []
