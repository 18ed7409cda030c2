"""Message templates: one row per (key, locale), edited by staff in the admin."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.validators import validate_locale

template_key_validator = RegexValidator(
    r"^[a-z0-9_]+$", "Use lowercase letters, digits and underscores, e.g. failure_1."
)


class TemplateEditor(models.TextChoices):
    BLOCKS = "blocks", "Simple editor: heading, paragraphs, button, sign-off"
    HTML = "html", "HTML and text, written by hand"


class MessageTemplate(models.Model):
    """Subject, text and HTML bodies in the Django template language, rendered in a sandbox.

    Only the variables documented for the key are available (see ``notifications.rendering``); the
    sandbox has no access to settings, the request or any model instance. With the simple editor the two
    bodies are generated from ``blocks`` (``notifications.email_layout``) every time the template is saved.
    """

    key = models.CharField(
        max_length=64,
        validators=[template_key_validator],
        help_text="What the message is for, e.g. failure_1. The dunning policy refers to it by this key.",
    )
    locale = models.CharField(
        max_length=16,
        default="en",
        validators=[validate_locale],
        help_text="Language of this version, e.g. en, fr, pt-BR. Customers without a version in their "
        "language get the default locale's.",
    )
    description = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=255)
    body_text = models.TextField("text body", help_text="The plain-text part. Every email has one.")
    body_html = models.TextField(
        "HTML body", blank=True, help_text="Optional. Without it the email is plain text only."
    )
    editor = models.CharField(max_length=8, choices=TemplateEditor.choices, default=TemplateEditor.HTML)
    # The simple editor's parts: heading, paragraphs, button_label, button_url, footer.
    blocks = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["key", "locale"]
        constraints = [
            models.UniqueConstraint(fields=["key", "locale"], name="message_template_key_locale_unique"),
            models.CheckConstraint(condition=~Q(key=""), name="message_template_key_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.key} [{self.locale}]"
