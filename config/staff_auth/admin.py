"""Failed and locked-out logins (django-axes' records), with an audited unlock, and the login history."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessLog
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.staff_auth.services import staff_login_unlock
from customers.actors import Actor


@admin.register(AccessAttempt)
class LoginAttemptAdmin(AccessAttemptAdmin):
    """A row per user name (and address) with failed logins; "Locked Out" once past the limit."""

    actions = ["unlock"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # unlock instead: it is audited

    def has_unlock_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("axes.delete_accessattempt")

    @admin.action(description="Unlock the selected user names and addresses now", permissions=["unlock"])
    def unlock(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        actor = Actor.staff(request.user)  # type: ignore[arg-type]
        pairs = sorted(set(queryset.values_list("username", "ip_address")), key=str)
        for username, ip_address in pairs:
            staff_login_unlock(username=username or "", ip_address=ip_address or "", actor=actor)
        unlocked = ", ".join(f"{username or '?'} ({ip_address or '?'})" for username, ip_address in pairs)
        self.message_user(request, f"Unlocked: {unlocked or 'nothing'}.", messages.SUCCESS)


@admin.register(AccessLog)
class LoginHistoryAdmin(AccessLogAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
