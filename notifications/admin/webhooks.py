"""Outgoing webhook endpoints (with a test button) and deliveries (with replay)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from customers.actors import Actor
from customers.admin_tools import LargeTableAdminMixin, admin_change_url
from notifications.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from notifications.netguard import UnsafeURL, check_url
from notifications.services.webhooks import (
    EVENT_TYPES,
    generate_secret,
    webhook_delivery_replay,
    webhook_endpoint_enable,
    webhook_endpoint_send_test,
)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https", help_text="https only (see the SSRF guard).")
    event_types = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {description}") for name, description in EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple,
        help_text="The events sent to this endpoint.",
    )
    secret = forms.CharField(
        required=False,
        max_length=100,
        help_text="Signs every delivery (HMAC-SHA256). Leave empty to generate one.",
        widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "secret"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            check_url(url)
        except UnsafeURL as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url

    def clean_secret(self) -> str:
        return self.cleaned_data.get("secret", "").strip() or generate_secret()


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "enabled", "events", "failing_since", "disabled_reason"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    readonly_fields = ["enabled", "failing_since", "disabled_at", "disabled_reason", "created_at"]
    actions = ["send_test_event", "enable"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["url", "description", "event_types", "secret"]
        return fields if obj is None else [*fields, *self.readonly_fields]

    @admin.display(description="Events")
    def events(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types or []) or "–"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        for endpoint in WebhookEndpoint.objects.filter(enabled=False).exclude(disabled_reason=""):
            self.message_user(
                request, f"Disabled: {endpoint.url}. {endpoint.disabled_reason}", messages.WARNING
            )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Send a test event to the selected endpoints", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        actor = Actor.staff(request.user)  # type: ignore[arg-type]
        for endpoint in queryset[:10]:
            delivery = webhook_endpoint_send_test(endpoint=endpoint, actor=actor)
            if delivery.status == DeliveryStatus.SUCCEEDED:
                self.message_user(
                    request, f"{endpoint.url}: HTTP {delivery.last_status_code}, delivered.", messages.SUCCESS
                )
            else:
                self.message_user(request, f"{endpoint.url}: failed ({delivery.last_error}).", messages.ERROR)

    @admin.action(description="Enable the selected endpoints again", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        actor = Actor.staff(request.user)  # type: ignore[arg-type]
        count = sum(webhook_endpoint_enable(endpoint=endpoint, actor=actor) for endpoint in queryset)
        self.message_user(
            request,
            f"{count} endpoint(s) enabled. Replay their failed deliveries if needed.",
            messages.SUCCESS,
        )


class RecentAttemptsFormSet(BaseInlineFormSet):
    def get_queryset(self) -> QuerySet[WebhookAttempt]:
        if not hasattr(self, "_recent"):
            self._recent = super().get_queryset().order_by("-attempted_at", "-id")[:20]
        return self._recent


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    formset = RecentAttemptsFormSet
    verbose_name_plural = "Attempts (latest 20)"
    fields = ["attempted_at", "status_code", "error", "duration_ms", "replay", "response_excerpt"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LargeTableAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "event_type",
        "event_id",
        "endpoint_link",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_select_related = ["endpoint"]
    list_filter = ["status", "event_type"]
    search_fields = ["=event_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    inlines = [WebhookAttemptInline]
    actions = ["replay"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in WebhookDelivery._meta.fields if f.name not in ("claim_token", "batch")]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_readonly_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Endpoint", ordering="endpoint__url")
    def endpoint_link(self, delivery: WebhookDelivery) -> str:
        url = admin_change_url("admin:notifications_webhookendpoint_change", delivery.endpoint_id)
        return format_html('<a href="{}">{}</a>', url, delivery.endpoint.url)

    @admin.action(description="Replay the selected deliveries now", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        actor = Actor.staff(request.user)  # type: ignore[arg-type]
        replayed = sum(webhook_delivery_replay(delivery=d, actor=actor) for d in queryset[:500])
        self.message_user(request, f"{replayed} deliver(ies) queued for replay.", messages.SUCCESS)
        if replayed < queryset.count():
            self.message_user(
                request,
                "Some deliveries were not replayed: their endpoint is disabled, or they are being delivered.",
                messages.WARNING,
            )
