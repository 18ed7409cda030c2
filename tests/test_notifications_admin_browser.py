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


@pytest.mark.parametrize("size", SIZES)
def test_the_simple_editor_previews_as_you_type(browser, live_server, boss, request, size) -> None:  # type: ignore[no-untyped-def]
    template = MessageTemplate.objects.get(key="failure_1", locale="en")
    url = live_server.url + reverse("admin:notifications_messagetemplate_change", args=[template.pk])
    with admin_tab(browser, live_server, boss, size=size, folder="admin", test_name=request.node.name) as tab:
        page = tab.page
        page.goto(url)
        email = page.frame_locator("iframe[title='Live preview of the HTML email']").locator("body")
        # The shipped template opens in the simple editor, and its preview is the rendered email.
        assert page.get_by_label("Simple editor: heading, paragraphs, button, sign-off").is_checked()
        assert page.locator("fieldset.template-editor-html").is_hidden()
        email.get_by_text("We tried to collect €49.00 for invoice INV-004217").wait_for()
        tab.shot("editor")
        assert tab.overflow() == 0

        # Typing changes the preview: a heading, and a paragraph with a variable and a character to escape.
        page.get_by_role("textbox", name="Heading").fill("Your payment of {{ amount }} did not go through")
        paragraphs = page.get_by_role("textbox", name="Paragraphs")
        paragraphs.fill(paragraphs.input_value() + "\n\nQuestions? Reply to this email & we <3 to help.")
        email.get_by_role("heading", name="Your payment of €49.00 did not go through").wait_for()
        email.get_by_text("Questions? Reply to this email & we <3 to help.").wait_for()
        assert page.locator(".template-editor__state").inner_text() == "up to date"
        tab.shot("typed")
        tab.shot_of(page.locator(".template-editor__preview"), "typed-preview")

        # A mistake is shown at once, in words, and the preview says so.
        page.get_by_role("textbox", name="Sign-off").fill("Thanks, {{ sender_name }}")
        page.locator(".template-editor__errors").get_by_text("Unknown variable(s): sender_name").wait_for()
        tab.shot("mistake")
        page.get_by_role("textbox", name="Sign-off").fill("Thanks,\nThe {{ product_name }} team")
        page.locator(".template-editor__errors").wait_for(state="hidden")

        # Switching to HTML keeps what the simple editor made, to change by hand.
        page.get_by_label("HTML and text, written by hand").check()
        assert page.locator("fieldset.template-editor-blocks").is_hidden()
        html_body = page.get_by_role("textbox", name="HTML body")
        html_body.wait_for()
        assert "Your payment of {{ amount }} did not go through</h1>" in html_body.input_value()
        html_body.fill(html_body.input_value().replace("did not go through", "bounced"))
        email.get_by_role("heading", name="Your payment of €49.00 bounced").wait_for()
        tab.shot("html-editor")

        page.get_by_role("button", name="Save", exact=True).click()
        page.wait_for_selector("ul.messagelist")
        template.refresh_from_db()
        assert template.editor == "html"
        assert "Your payment of {{ amount }} bounced</h1>" in template.body_html
        assert tab.overflow() == 0
        assert tab.problems == []
