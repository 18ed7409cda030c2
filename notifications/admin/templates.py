"""Message templates: edit with validation, preview as the email will look, send a test to yourself."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from customers.actors import Actor
from customers.models import Customer
from notifications.models import MessageTemplate
from notifications.rendering import TemplateRenderError, TemplateSource, variables_for
from notifications.services.templates import (
    message_template_preview,
    message_template_save,
    message_template_send_test,
    message_template_validate,
)


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["key", "locale", "description", "subject", "body_text", "body_html"]
        widgets = {
            "subject": forms.TextInput(attrs={"size": 100}),
            "body_text": forms.Textarea(attrs={"rows": 16, "cols": 100, "style": "font-family:monospace"}),
            "body_html": forms.Textarea(attrs={"rows": 20, "cols": 100, "style": "font-family:monospace"}),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        key = cleaned.get("key") or self.instance.key
        if key and cleaned.get("subject") is not None and cleaned.get("body_text") is not None:
            source = TemplateSource(
                key=key,
                subject=cleaned.get("subject", ""),
                body_text=cleaned.get("body_text", ""),
                body_html=cleaned.get("body_html", ""),
            )
            try:
                message_template_validate(source=source)
            except ValidationError as exc:
                raise ValidationError(
                    ["This template cannot be saved: it does not render.", *exc.messages]
                ) from exc
        return cleaned


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ["key", "locale", "subject", "updated_at", "updated_by", "preview_link"]
    list_filter = ["locale"]
    search_fields = ["key", "subject"]
    ordering = ["key", "locale"]
    readonly_fields = ["variables", "preview_link", "updated_at", "updated_by"]
    list_select_related = ["updated_by"]
    actions = ["send_test_to_me"]
    fieldsets = [
        (None, {"fields": ["key", "locale", "description", "preview_link"]}),
        ("Content", {"fields": ["subject", "body_text", "body_html"]}),
        ("Available variables", {"fields": ["variables"]}),
        ("History", {"fields": ["updated_at", "updated_by"]}),
    ]

    def save_model(self, request: HttpRequest, obj: MessageTemplate, form: Any, change: bool) -> None:
        message_template_save(template=obj, actor=Actor.staff(request.user))  # type: ignore[arg-type]

    @admin.display(description="Variables")
    def variables(self, obj: MessageTemplate | None) -> str:
        key = obj.key if obj is not None and obj.key else ""
        rows = format_html_join(
            "", "<tr><td><code>{{{{ {} }}}}</code></td><td>{}</td></tr>", sorted(variables_for(key).items())
        )
        return format_html(
            '<p class="help">Only these variables exist; anything else renders as nothing. '
            "Tags that reach outside the template ({{% load %}}, {{% include %}}, {{% extends %}}, "
            "{{% debug %}}) are refused.</p><table>{}</table>",
            rows,
        )

    @admin.display(description="Preview")
    def preview_link(self, obj: MessageTemplate) -> str:
        if obj is None or obj.pk is None:
            return "Save first to preview."
        url = reverse("admin:notifications_messagetemplate_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview</a>', url)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="notifications_messagetemplate_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = get_object_or_404(MessageTemplate, pk=pk)
        if not self.has_view_or_change_permission(request, template):
            raise PermissionDenied
        external_id = request.GET.get("customer", "").strip()
        customer = Customer.objects.filter(external_id=external_id).first() if external_id else None
        rendered, error = None, ""
        try:
            rendered = message_template_preview(template=template, customer=customer)
        except TemplateRenderError as exc:
            error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": template,
            "title": f"Preview: {template}",
            "template_obj": template,
            "rendered": rendered,
            "error": error,
            "customer": customer,
            "customer_query": external_id,
            "customer_not_found": bool(external_id) and customer is None,
        }
        return TemplateResponse(request, "admin/notifications/messagetemplate/preview.html", context)

    @admin.action(description="Send a test of the selected templates to me", permissions=["view"])
    def send_test_to_me(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        actor = Actor.staff(request.user)  # type: ignore[arg-type]
        email = getattr(request.user, "email", "")
        for template in queryset:
            try:
                message_template_send_test(template=template, to=email, actor=actor)
            except (ValueError, TemplateRenderError) as exc:
                self.message_user(request, f"{template}: {exc}", messages.ERROR)
                return
            except Exception as exc:  # the mail server said no: tell staff, do not crash the page
                self.message_user(request, f"{template}: sending failed ({exc})", messages.ERROR)
                return
        self.message_user(request, f"Sent {queryset.count()} test email(s) to {email}.", messages.SUCCESS)
