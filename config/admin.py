"""Admin of the project layer: the finished ticks (read-only), and staff sign-in records
(config/staff_auth/admin.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from config.models import TickRun
from config.staff_auth import admin as staff_auth_admin  # noqa: F401 - registers the ModelAdmins


@admin.register(TickRun)
class TickRunAdmin(admin.ModelAdmin):
    list_display = ["finished_at", "took", "cases", "batches", "what"]
    date_hierarchy = "finished_at"
    readonly_fields = ["finished_at", "tick_time", "duration_seconds", "cases", "batches", "counts"]
    fields = readonly_fields

    @admin.display(description="Took", ordering="duration_seconds")
    def took(self, run: TickRun) -> str:
        return "–" if run.duration_seconds is None else f"{run.duration_seconds:.1f} s"

    @admin.display(description="What it did")
    def what(self, run: TickRun) -> str:
        return ", ".join(f"{key}: {value}" for key, value in sorted(run.counts.items())) or "nothing was due"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
