"""The outbox, read-only (it is history), and the list of undeliverable addresses."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from customers.actors import Actor
from customers.admin_tools import IndexedValuesFilter, LargeTableAdminMixin, admin_change_url
from customers.models import Customer
from notifications.models import MessageTemplate, Notification, NotificationStatus, SuppressedAddress
from notifications.services.outbox import notifications_requeue, suppressed_address_add


class TemplateKeyFilter(IndexedValuesFilter):
    title = "template"
    parameter_name = "template_key"
    # Choices come from the small templates table, not from millions of outbox rows.
    source_model = MessageTemplate
    source_field = "key"


@admin.register(Notification)
class NotificationAdmin(LargeTableAdminMixin, admin.ModelAdmin):
    # Few columns, so the outbox fits a laptop screen with the sidebar open; the message page has the rest.
    list_display = ["created", "template_key", "recipient", "customer_link", "status_label", "when"]
    list_display_links = ["created"]
    list_select_related = ["customer"]
    list_filter = ["status", "channel", TemplateKeyFilter, "audience", "reason_code"]
    search_fields = ["recipient"]
    search_help_text = "Exact recipient address, customer external id, case id or notification id."
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    actions = ["requeue"]
    fieldsets = [
        (None, {"fields": ["customer", "invoice", "case_ref", "step_ref", "template_key", "locale"]}),
        ("Recipient", {"fields": ["channel", "audience", "recipient", "recipient_name"]}),
        (
            "Status",
            {
                "fields": [
                    "status",
                    "reason_code",
                    "status_reason",
                    "bypass_cap",
                    "send_after",
                    "attempts",
                    "last_attempt_at",
                ]
            },
        ),
        (
            "Tracking",
            {
                "fields": [
                    "message_id",
                    "esp_message_id",
                    "created_at",
                    "sent_at",
                    "delivered_at",
                    "opened_at",
                    "clicked_at",
                    "bounced_at",
                    "complained_at",
                ]
            },
        ),
        ("Content", {"fields": ["subject", "body_text", "html_preview"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Notification._meta.fields] + ["html_preview", "customer_link"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Notification], search_term: str
    ) -> tuple[QuerySet[Notification], bool]:
        # Exact matches only: each is an index lookup, even on a huge outbox.
        term = search_term.strip()
        if not term:
            return queryset, False
        customer_ids = list(Customer.objects.filter(external_id=term).values_list("pk", flat=True))
        matches = Q(recipient=term.lower()) | Q(customer_id__in=customer_ids)
        if term.isdigit():
            matches |= Q(case_ref=int(term)) | Q(pk=int(term))
        return queryset.filter(matches), False

    @admin.display(description="Customer", ordering="customer__name")
    def customer_link(self, notification: Notification) -> str:
        if notification.customer_id is None:
            return "–"
        url = admin_change_url("admin:customers_customer_change", notification.customer_id)
        return format_html('<a href="{}">{}</a>', url, notification.customer.name)

    @admin.display(description="Created", ordering="created_at")
    def created(self, notification: Notification) -> str:
        return timezone.localtime(notification.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Status", ordering="status")
    def status_label(self, notification: Notification) -> str:
        if not notification.reason_code:
            return notification.get_status_display()
        return format_html(
            '{}<br><span class="quiet">{}</span>',
            notification.get_status_display(),
            notification.get_reason_code_display(),
        )

    @admin.display(description="Sent, or due", ordering="send_after")
    def when(self, notification: Notification) -> str:
        if notification.sent_at is not None:
            return "sent " + timezone.localtime(notification.sent_at).strftime("%Y-%m-%d %H:%M")
        if notification.status in (NotificationStatus.QUEUED, NotificationStatus.SENDING):
            return "due " + timezone.localtime(notification.send_after).strftime("%Y-%m-%d %H:%M")
        return "–"

    @admin.display(description="HTML part")
    def html_preview(self, notification: Notification) -> str:
        if not notification.body_html:
            return "–"
        return format_html(
            '<iframe title="HTML part" sandbox="" srcdoc="{}" style="width:100%;max-width:720px;height:480px;'
            'border:1px solid #ccc;background:#fff"></iframe>',
            notification.body_html,
        )

    @admin.action(description="Queue the selected failed messages again", permissions=["change"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        count = notifications_requeue(
            notification_ids=list(queryset.values_list("pk", flat=True)[:1000]),
            actor=Actor.staff(request.user),  # type: ignore[arg-type]
        )
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(
            request, f"{count} message(s) queued again. Only failed messages can be queued again.", level
        )


@admin.register(SuppressedAddress)
class SuppressedAddressAdmin(admin.ModelAdmin):
    list_display = ["email", "reason", "created_at", "details"]
    list_filter = ["reason"]
    search_fields = ["=email"]
    fields = ["email", "reason", "details", "notification", "created_at"]

    def save_model(self, request: HttpRequest, obj: SuppressedAddress, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # only the details/reason text
            return
        suppressed_address_add(email=obj.email, reason=obj.reason, details=obj.details)
        stored = SuppressedAddress.objects.get(email=obj.email.strip().lower())
        obj.pk = stored.pk

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # An address is added or removed (removing makes it deliverable again), not renamed.
        return ["email", "notification", "created_at"] if obj is not None else ["notification", "created_at"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"reason": "manual"}
