"""The simple email editor: parts in, both bodies out, escaped and sandboxed; the admin form, the live
preview endpoint, and the migration of the shipped templates."""

from __future__ import annotations

import importlib
import json

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from customers.models import AuditEvent
from notifications.default_templates import DEFAULT_TEMPLATES
from notifications.email_layout import EmailBlocks, escape_text, split_paragraphs
from notifications.models import MessageTemplate, TemplateEditor
from notifications.rendering import CompiledTemplate, TemplateSource
from notifications.services.templates import message_template_preview

pytestmark = pytest.mark.django_db
ADD = "admin:notifications_messagetemplate_add"
DRAFT = "admin:notifications_messagetemplate_preview_draft"


def test_typed_text_is_escaped_and_template_tags_are_kept() -> None:
    assert escape_text('Tom & "Jerry" <b>{{ contact_name }}</b>{% if plan %}!{% endif %}\nBye') == (
        "Tom &amp; &quot;Jerry&quot; &lt;b&gt;{{ contact_name }}&lt;/b&gt;{% if plan %}!{% endif %}<br>Bye"
    )
    assert split_paragraphs("One\nline two\n\n\n  Three  \r\n\r\nFour") == ("One\nline two", "Three", "Four")


def test_blocks_make_both_bodies_and_values_are_escaped_when_rendered() -> None:
    blocks = EmailBlocks(
        heading="Payment failed",
        paragraphs=("Hi {{ contact_name }},", "We could not collect {{ amount }} <today>."),
        button_label="Update your card",
    )
    source = TemplateSource(
        key="failure_1", subject="s", body_text=blocks.body_text(), body_html=blocks.body_html()
    )
    rendered = CompiledTemplate(source).render(
        {
            "contact_name": "<script>alert(1)</script>",
            "amount": "€49.00",
            "portal_url": "https://x.example/p?a=1&b=2",
        }
    )
    assert rendered.body_text == (
        "Payment failed\n\nHi <script>alert(1)</script>,\n\nWe could not collect €49.00 <today>.\n\n"
        "Update your card:\nhttps://x.example/p?a=1&b=2\n\nThanks,\nThe  team\n"
    )
    html = rendered.body_html
    assert "<script>" not in html and "Hi &lt;script&gt;alert(1)&lt;/script&gt;," in html
    assert "We could not collect €49.00 &lt;today&gt;." in html
    assert '<a href="https://x.example/p?a=1&amp;b=2" style="background:#1a56db' in html
    assert html.count("<p ") == 5  # two paragraphs, the button, the fallback link, the sign-off
    assert '<h1 style="margin:0 0 16px;font-size:22px;line-height:1.3">Payment failed</h1>' in html


def test_no_button_without_a_label() -> None:
    blocks = EmailBlocks(paragraphs=("Hello",), button_label="", footer="")
    assert "<a " not in blocks.body_html()
    assert blocks.body_text() == "Hello\n"


def test_the_shipped_templates_open_in_the_simple_editor_with_their_own_content() -> None:
    for default in DEFAULT_TEMPLATES:
        template = MessageTemplate.objects.get(key=default.key, locale="en")
        assert template.editor == TemplateEditor.BLOCKS
        parts = EmailBlocks.from_dict(template.blocks)
        assert parts.body_html() == template.body_html == default.body_html
        assert parts.body_text() == template.body_text


def test_the_migration_leaves_templates_edited_by_staff_in_the_html_editor() -> None:
    migration = importlib.import_module("notifications.migrations.0004_template_editor")
    MessageTemplate.objects.update(editor=TemplateEditor.HTML, blocks={})
    MessageTemplate.objects.filter(key="failure_2").update(body_html="<p>Our own layout</p>")
    migration.to_simple_editor(apps, None)
    assert MessageTemplate.objects.get(key="failure_2").editor == TemplateEditor.HTML
    assert MessageTemplate.objects.get(key="failure_1").editor == TemplateEditor.BLOCKS


def _simple(**overrides: str) -> dict[str, str]:
    data = {
        "key": "card_update_nudge",
        "locale": "en",
        "description": "",
        "subject": "A quick note about your card, {{ contact_name }}",
        "editor": "blocks",
        "heading": "Your card needs attention",
        "paragraphs": "Hi {{ contact_name }},\n\nPlease update the card ending {{ card_last4 }} & soon.",
        "button_label": "Update your card",
        "button_url": "{{ portal_url }}",
        "footer": "Thanks,\nBilling",
        "body_text": "",
        "body_html": "",
    }
    data.update(overrides)
    return data


def test_staff_write_a_template_with_the_simple_editor(admin_client: Client, admin_user) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(reverse(ADD), _simple())
    assert response.status_code == 302, response.content.decode()
    template = MessageTemplate.objects.get(key="card_update_nudge")
    assert template.editor == TemplateEditor.BLOCKS
    assert template.blocks["paragraphs"] == [
        "Hi {{ contact_name }},",
        "Please update the card ending {{ card_last4 }} & soon.",
    ]
    rendered = message_template_preview(template=template)
    assert "Please update the card ending 4242 &amp; soon." in rendered.body_html
    assert "Please update the card ending 4242 & soon." in rendered.body_text
    assert "/portal/sample-token/" in rendered.body_html
    event = AuditEvent.objects.get(action="message_template.saved")
    assert (event.actor_user, event.details["editor"]) == (admin_user, "blocks")
    # Reopened, the form shows the parts, not the generated HTML.
    page = admin_client.get(reverse("admin:notifications_messagetemplate_change", args=[template.pk]))
    assert page.context["adminform"].form.initial["heading"] == "Your card needs attention"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("paragraphs", "", "Write at least one paragraph."),
        ("paragraphs", "Hi {{ settings.SECRET_KEY }}", "Unknown variable(s): settings.SECRET_KEY"),
        ("paragraphs", "{% load static %}Hi", "the {% load %} tag is not allowed"),
        ("footer", "{% if plan %}unclosed", "does not render"),
    ],
)
def test_the_simple_editor_keeps_the_sandbox(
    admin_client: Client, field: str, value: str, message: str
) -> None:
    response = admin_client.post(reverse(ADD), _simple(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not MessageTemplate.objects.filter(key="card_update_nudge").exists()


def test_raw_html_stays_possible(admin_client: Client) -> None:
    html = '<table role="presentation"><tr><td>{{ amount }} due</td></tr></table>'
    response = admin_client.post(
        reverse(ADD), _simple(editor="html", body_text="{{ amount }} due", body_html=html, paragraphs="")
    )
    assert response.status_code == 302
    template = MessageTemplate.objects.get(key="card_update_nudge")
    assert (template.editor, template.body_html) == (TemplateEditor.HTML, html)


def test_the_live_preview_renders_the_draft_with_sample_data(admin_client: Client) -> None:
    answer = admin_client.post(reverse(DRAFT), _simple())
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    data = json.loads(answer.content)
    assert data["errors"] == []
    assert data["subject"] == "A quick note about your card, Ada"
    assert "Please update the card ending 4242 &amp; soon." in data["html"]
    assert data["text"].startswith("Your card needs attention\n\nHi Ada,")
    assert data["body_html"].count("{{ card_last4 }}") == 1  # the generated source, for the HTML editor
    broken = json.loads(admin_client.post(reverse(DRAFT), _simple(paragraphs="{{ nope }}")).content)
    assert broken["errors"] and "Unknown variable(s): nope" in broken["errors"][0]
    raw = json.loads(
        admin_client.post(
            reverse(DRAFT), _simple(editor="html", body_text="t", body_html="<p>{{ amount }}</p>")
        ).content
    )
    assert raw["html"] == "<p>€49.00</p>"
    assert admin_client.get(reverse(DRAFT)).status_code == 405


def test_the_live_preview_needs_a_permission_to_edit(staff_user) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(staff_user)
    staff_user.user_permissions.add(Permission.objects.get(codename="view_messagetemplate"))
    assert client.post(reverse(DRAFT), _simple()).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="change_messagetemplate"))
    assert client.post(reverse(DRAFT), _simple()).status_code == 200
