"""Message templates: the sandbox, validation, the shipped defaults, and the admin (preview, test send)."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse

from customers.models import AuditEvent
from notifications.default_templates import DEFAULT_TEMPLATES, install_default_templates
from notifications.models import MessageTemplate
from notifications.rendering import CompiledTemplate, TemplateRenderError, TemplateSource, customer_context
from notifications.services.templates import message_template_preview
from tests.factories import ContactFactory, CustomerFactory, InvoiceFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db

SHIPPED_KEYS = {
    "predunning_expiry_30d",
    "predunning_expiry_7d",
    "failure_1",
    "failure_2",
    "failure_3",
    "final_notice",
    "recovered",
    "suspended",
    "winback",
    "portal_link",
    "staff_escalation",
}


def _render(body: str, key: str = "failure_1", **context: object) -> str:
    source = TemplateSource(key=key, subject="s", body_text=body, body_html=body)
    rendered = CompiledTemplate(source).render(context)
    return rendered.body_text + rendered.body_html


# --- the sandbox -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ request.META }}",
        "{{ user.password }}",
        "{{ customer.pk }}",
        "{{ perms }}",
        "{{ csrf_token }}",
    ],
)
def test_settings_request_and_objects_are_not_reachable(body: str, settings) -> None:  # type: ignore[no-untyped-def]
    output = _render(body, customer_name="Ada")
    assert settings.SECRET_KEY not in output
    assert output.strip() == ""


def test_a_context_passed_with_model_instances_only_keeps_documented_plain_values(settings) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(name="Ada")
    # Even a careless caller cannot hand a template an object to walk.
    output = _render(
        "{{ customer_name }}|{{ customer_name.customer }}|{{ settings }}|{{ company.delete }}",
        customer_name=customer,
        settings=settings,
        company=customer,
    )
    assert output.startswith("Ada (cust-")
    assert "delete" not in output
    assert "SECRET" not in output


@pytest.mark.parametrize(
    "body",
    ["{{ customer_name.__class__ }}", "{{ customer_name.__class__.__mro__ }}", "{{ _private }}"],
)
def test_underscore_attributes_are_refused(body: str) -> None:
    with pytest.raises(TemplateRenderError, match="underscores"):
        _render(body)


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        ("{% load static %}", "load"),
        ("{% load i18n %}{% trans 'x' %}", "load"),
        ('{% include "admin/base.html" %}', "include"),
        ('{% extends "admin/base.html" %}', "extends"),
        ("{% debug %}", "debug"),
        ("{% url 'admin:index' %}", "url"),
        ("{% block x %}{% endblock %}", "block"),
    ],
)
def test_tags_that_reach_outside_the_template_are_refused(body: str, tag: str) -> None:
    with pytest.raises(TemplateRenderError, match=f"{{% {tag} %}}"):
        _render(body)


def test_the_subject_never_carries_a_line_break_into_the_headers() -> None:
    source = TemplateSource(
        key="failure_1", subject="Hello {{ customer_name }}\nBcc: x@evil.test", body_text="b"
    )
    rendered = CompiledTemplate(source).render({"customer_name": "Ada\r\nX-Injected: 1"})
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_html_is_escaped_in_the_html_part_only() -> None:
    source = TemplateSource(
        key="failure_1", subject="{{ company }}", body_text="{{ company }}", body_html="{{ company }}"
    )
    rendered = CompiledTemplate(source).render({"company": "<b>Acme & Co</b>"})
    assert rendered.subject == "<b>Acme & Co</b>"
    assert rendered.body_text.strip() == "<b>Acme & Co</b>"
    assert rendered.body_html == "&lt;b&gt;Acme &amp; Co&lt;/b&gt;"


# --- the shipped templates ------------------------------------------------------------------------------


def test_every_shipped_template_is_installed_in_english_and_renders() -> None:
    installed = {t.key: t for t in MessageTemplate.objects.filter(locale="en")}
    assert set(installed) >= SHIPPED_KEYS
    for key in SHIPPED_KEYS:
        rendered = message_template_preview(template=installed[key])
        assert rendered.subject and rendered.body_text.strip() and rendered.body_html.strip()
        link = "/admin/" if key == "staff_escalation" else "/portal/"
        # One clear link, in both the plain-text and the HTML part.
        assert link in rendered.body_text, key
        assert f'href="http://127.0.0.1:8000{link}' in rendered.body_html, key


def test_installing_again_never_overwrites_an_edited_template() -> None:
    MessageTemplate.objects.filter(key="failure_1", locale="en").update(subject="Edited by staff")
    MessageTemplate.objects.filter(key="winback").delete()
    assert install_default_templates(MessageTemplate) == 1
    assert MessageTemplate.objects.get(key="failure_1", locale="en").subject == "Edited by staff"
    assert len(DEFAULT_TEMPLATES) == len(SHIPPED_KEYS)


def test_amounts_and_dates_follow_the_customers_locale() -> None:
    from datetime import date

    customer = CustomerFactory(locale="de", currency="EUR")
    invoice = InvoiceFactory(customer=customer, amount_due_minor=123456)
    context = customer_context(
        customer=customer, invoice=invoice, extra={"access_affected_on": date(2025, 3, 4)}
    )
    assert context["amount"] == "1.234,56\xa0€"
    assert context["access_affected_on"] == "4. März 2025"
    assert context["access_affected_on_iso"] == "2025-03-04"


# --- the admin ------------------------------------------------------------------------------------------


def _form_data(**overrides: str) -> dict[str, str]:
    data = {
        "key": "custom_notice",
        "locale": "en",
        "description": "",
        "subject": "Hello {{ customer_name }}",
        "body_text": "Pay here: {{ portal_url }}",
        "body_html": "",
    }
    data.update(overrides)
    return data


def test_the_admin_refuses_a_template_that_does_not_render(admin_client) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:notifications_messagetemplate_add")
    for broken in ["{% if %}", "{{ settings.SECRET_KEY }}", "{% load static %}", "{{ amount|nosuchfilter }}"]:
        response = admin_client.post(url, _form_data(body_text=broken))
        assert response.status_code == 200, broken
        assert "does not render" in response.content.decode(), broken
    assert not MessageTemplate.objects.filter(key="custom_notice").exists()


def test_the_admin_saves_a_valid_template_and_audits_who(admin_client, admin_user) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(reverse("admin:notifications_messagetemplate_add"), _form_data())
    assert response.status_code == 302
    template = MessageTemplate.objects.get(key="custom_notice")
    assert template.updated_by == admin_user
    assert AuditEvent.objects.filter(action="message_template.saved", actor_user=admin_user).exists()


def test_the_preview_shows_the_email_with_sample_data_or_a_customer(admin_client) -> None:  # type: ignore[no-untyped-def]
    template = MessageTemplate.objects.get(key="failure_1", locale="en")
    url = reverse("admin:notifications_messagetemplate_preview", args=[template.pk])
    sample = admin_client.get(url).content.decode()
    assert "We noticed an issue with your Example SaaS payment" in sample
    assert "INV-004217" in sample
    # The whole HTML email is in the sandboxed frame, escaped: no quote in it ends the attribute early.
    srcdoc = re.search(r'<iframe[^>]* sandbox="" srcdoc="([^"]*)"', sample)
    assert srcdoc is not None
    assert html.unescape(srcdoc.group(1)) == message_template_preview(template=template).body_html

    customer = CustomerFactory(external_id="acme-42", name="Grace Hopper", currency="USD")
    ContactFactory(customer=customer, name="Grace")
    PaymentMethodFactory(customer=customer, last4="1881")
    InvoiceFactory(customer=customer, number="INV-REAL-1", amount_due_minor=99900, currency="USD")
    real = admin_client.get(url, {"customer": "acme-42"}).content.decode()
    assert "INV-REAL-1" in real and "$999.00" in real and "Hi Grace," in real
    missing = admin_client.get(url, {"customer": "nobody"}).content.decode()
    assert "No customer with external id" in missing


def test_send_test_to_me_emails_the_staff_member(admin_client, admin_user, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    template = MessageTemplate.objects.get(key="failure_2", locale="en")
    response = admin_client.post(
        reverse("admin:notifications_messagetemplate_changelist"),
        {"action": "send_test_to_me", "_selected_action": [template.pk]},
        follow=True,
    )
    assert "Sent 1 test email" in response.content.decode()
    [message] = mail.outbox
    assert message.to == [admin_user.email]
    assert message.subject.startswith("[TEST] Action needed")
    assert message.alternatives and message.alternatives[0][1] == "text/html"


def test_staff_without_permission_cannot_preview_or_send_tests(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    template = MessageTemplate.objects.get(key="failure_1", locale="en")
    client.force_login(staff_user)
    url = reverse("admin:notifications_messagetemplate_preview", args=[template.pk])
    assert client.get(url).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="view_messagetemplate"))
    assert client.get(url).status_code == 200
