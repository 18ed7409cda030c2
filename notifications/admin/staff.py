"""Staff tasks: escalations and operational alerts. Assign them, and mark them done."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from customers.actors import Actor
from notifications.models import StaffTask, StaffTaskStatus
from notifications.services.staff import staff_task_complete


@admin.register(StaffTask)
class StaffTaskAdmin(admin.ModelAdmin):
    list_display = ["title", "customer", "case_ref", "status", "assignee", "created_at", "done_at"]
    list_select_related = ["customer", "assignee"]
    list_filter = ["status"]
    search_fields = ["title", "=customer__external_id", "=case_ref"]
    ordering = ["status", "-created_at"]
    fields = [
        "title",
        "details",
        "customer",
        "invoice",
        "case_ref",
        "status",
        "group_name",
        "assignee",
        "created_at",
        "done_at",
        "done_by",
    ]
    readonly_fields = [f for f in fields if f != "assignee"]
    actions = ["mark_done"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks come from dunning and from the system, which also email the staff group

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET" and "status__exact" not in request.GET:
            open_count = StaffTask.objects.filter(status=StaffTaskStatus.OPEN).count()
            if open_count:
                self.message_user(request, f"{open_count} task(s) are open.", messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Mark the selected tasks done", permissions=["change"])
    def mark_done(self, request: HttpRequest, queryset: QuerySet[StaffTask]) -> None:
        actor = Actor.staff(request.user)  # type: ignore[arg-type]
        count = sum(staff_task_complete(task=task, actor=actor) for task in queryset)
        self.message_user(request, f"{count} task(s) marked done.", messages.SUCCESS)
