from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from customers.actors import Actor
from customers.services import audit_record
from dunning.models import DeclineCode


class ClassificationFilter(admin.SimpleListFilter):
    title = "classification"
    parameter_name = "classified"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("no", "Unclassified codes seen"), ("yes", "Classified")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DeclineCode]) -> QuerySet[DeclineCode]:
        if self.value() == "no":
            return queryset.filter(is_classified=False)
        if self.value() == "yes":
            return queryset.filter(is_classified=True)
        return queryset


@admin.register(DeclineCode)
class DeclineCodeAdmin(admin.ModelAdmin):
    # The messages are on the code's page: as a column they made every row five lines tall.
    list_display = ["code", "processor", "category", "is_classified", "times_seen", "last_seen"]
    change_list_template = "admin/backoffice_change_list.html"
    list_filter = [ClassificationFilter, "category", "processor"]
    search_fields = ["code", "customer_message", "staff_description"]
    readonly_fields = ["times_seen", "first_seen_at", "last_seen_at", "updated_at"]
    fields = [
        "processor",
        "code",
        "category",
        "customer_message",
        "staff_description",
        "is_classified",
        "times_seen",
        "first_seen_at",
        "last_seen_at",
        "updated_at",
    ]
    actions = ["mark_classified"]

    @admin.display(description="Last seen", ordering="last_seen_at")
    def last_seen(self, code: DeclineCode) -> str:
        return (
            "–" if code.last_seen_at is None else timezone.localtime(code.last_seen_at).strftime("%Y-%m-%d")
        )

    def save_model(self, request: HttpRequest, obj: DeclineCode, form: Any, change: bool) -> None:
        # Saving a code from the "unclassified" list is the act of classifying it.
        if change and "category" in form.changed_data:
            obj.is_classified = True
        super().save_model(request, obj, form, change)
        audit_record(
            actor=Actor.staff(request.user),
            action="decline_code.changed" if change else "decline_code.created",
            details={"processor": obj.processor, "code": obj.code, "category": obj.category},
        )

    @admin.action(description="Confirm the category of the selected codes", permissions=["change"])
    def mark_classified(self, request: HttpRequest, queryset: QuerySet[DeclineCode]) -> None:
        codes = list(queryset.filter(is_classified=False).values_list("processor", "code", "category"))
        queryset.filter(is_classified=False).update(is_classified=True)
        for processor, code, category in codes:
            audit_record(
                actor=Actor.staff(request.user),
                action="decline_code.classified",
                details={"processor": processor, "code": code, "category": category},
            )
        self.message_user(request, f"{len(codes)} code(s) marked as classified.", messages.SUCCESS)
