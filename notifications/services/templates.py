"""Message templates: validation, previews and test sends for the admin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from customers.actors import Actor
from customers.models import Customer, Invoice, InvoiceStatus, PaymentMethod
from customers.services import audit_record
from notifications.email_layout import EmailBlocks
from notifications.models import MessageTemplate, TemplateEditor
from notifications.rendering import (
    STAFF_TEMPLATE_KEYS,
    RenderedMessage,
    TemplateRenderError,
    TemplateSource,
    customer_context,
    render_preview,
    sample_context,
    validate_template,
)


def source_of(template: MessageTemplate) -> TemplateSource:
    return TemplateSource(
        key=template.key, subject=template.subject, body_text=template.body_text, body_html=template.body_html
    )


def message_template_validate(*, source: TemplateSource) -> None:
    """Raise ValidationError listing every problem when the template does not compile or render."""
    errors = validate_template(source)
    if errors:
        raise ValidationError(errors)


def compose_bodies(*, blocks: Mapping[str, Any] | None, locale: str) -> tuple[dict[str, Any], str, str]:
    """The simple editor's parts, cleaned, and the text and HTML bodies they make."""
    parts = EmailBlocks.from_dict(dict(blocks or {}))
    return parts.to_dict(), parts.body_text(), parts.body_html(lang=locale or "en")


def message_template_save(*, template: MessageTemplate, actor: Actor) -> MessageTemplate:
    """Validate (fields and rendering) and save; audited with who changed it. With the simple editor, both
    bodies are generated from its parts first, so they always match what staff see in it."""
    if template.editor == TemplateEditor.BLOCKS:
        template.blocks, template.body_text, template.body_html = compose_bodies(
            blocks=template.blocks, locale=template.locale
        )
    template.full_clean()
    message_template_validate(source=source_of(template))
    with transaction.atomic():
        template.updated_at = timezone.now()
        template.updated_by = actor.user  # type: ignore[assignment]
        template.save()
        audit_record(
            actor=actor,
            action="message_template.saved",
            details={
                "template_id": template.pk,
                "key": template.key,
                "locale": template.locale,
                "editor": template.editor,
            },
        )
    return template


@dataclass(frozen=True)
class DraftPreview:
    """An unsaved template as the email will look (sample data), the bodies it has, and what is wrong."""

    rendered: RenderedMessage | None
    body_text: str
    body_html: str
    errors: list[str]


def message_template_draft_preview(
    *,
    key: str,
    locale: str,
    subject: str,
    editor: str,
    blocks: Mapping[str, Any] | None = None,
    body_text: str = "",
    body_html: str = "",
) -> DraftPreview:
    """The live preview of the template editor: renders what is being typed, saved or not, in the sandbox."""
    if editor == TemplateEditor.BLOCKS:
        _, body_text, body_html = compose_bodies(blocks=blocks, locale=locale)
    source = TemplateSource(key=key, subject=subject, body_text=body_text, body_html=body_html)
    errors = validate_template(source)
    try:
        rendered: RenderedMessage | None = render_preview(source, sample_context(key), locale=locale or "en")
    except TemplateRenderError as exc:
        rendered = None
        errors = errors or [str(exc)]
    return DraftPreview(rendered=rendered, body_text=body_text, body_html=body_html, errors=errors)


def preview_context(*, key: str, customer: Customer | None) -> dict[str, object]:
    """Sample data, or the chosen customer's real data (latest open invoice, default payment method)."""
    if customer is None or key in STAFF_TEMPLATE_KEYS:
        return sample_context(key)
    invoice = (
        Invoice.objects.filter(customer=customer, status=InvoiceStatus.OPEN)
        .order_by("-due_at", "-id")
        .first()
        or Invoice.objects.filter(customer=customer).order_by("-due_at", "-id").first()
    )
    method = PaymentMethod.objects.filter(customer=customer, is_default=True).first()
    sample = sample_context(key)
    contact = customer.contacts.order_by("role", "id").first()
    return customer_context(
        customer=customer,
        contact_name=contact.name if contact and contact.name else customer.name,
        invoice=invoice,
        payment_method=method,
        # Values only dunning knows are shown with sample values, marked as such in the preview page.
        extra={
            "decline_reason": sample["decline_reason"],
            "access_affected_on": timezone.now().date() + timedelta(days=7),
            "portal_url": f"{settings.PORTAL_BASE_URL}/portal/preview-token/",
            "case_day": sample["case_day"],
        },
    )


def message_template_preview(
    *,
    template: MessageTemplate,
    customer: Customer | None = None,
    context: Mapping[str, object] | None = None,
) -> RenderedMessage:
    """Render as the email will look, for the given customer or with sample data. Raises
    TemplateRenderError with a message for staff."""
    values = context if context is not None else preview_context(key=template.key, customer=customer)
    locale = customer.locale if customer is not None else template.locale
    return render_preview(source_of(template), values, locale=locale or template.locale)


def message_template_send_test(*, template: MessageTemplate, to: str, actor: Actor) -> RenderedMessage:
    """Send the template, rendered with sample data, to ``to`` (the staff member) right away.

    A test send is not a customer message: it bypasses the outbox, the cap and quiet hours.
    """
    if not to:
        raise ValueError("Your user account has no email address; add one to receive test emails.")
    rendered = message_template_preview(template=template)
    message = EmailMultiAlternatives(
        subject=f"[TEST] {rendered.subject}"[:255],
        body=rendered.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"X-Dunning-Test": template.key},
    )
    if rendered.body_html:
        message.attach_alternative(rendered.body_html, "text/html")
    message.send(fail_silently=False)
    audit_record(
        actor=actor,
        action="message_template.test_sent",
        details={"template_id": template.pk, "key": template.key, "to": to},
    )
    return rendered


__all__ = [
    "DraftPreview",
    "TemplateRenderError",
    "compose_bodies",
    "message_template_draft_preview",
    "message_template_preview",
    "message_template_save",
    "message_template_send_test",
    "message_template_validate",
    "preview_context",
    "source_of",
]
