""" "Sent mail (local)": the emails ``make run`` saved to its local mailbox, as their recipients see them.

Shown only while the local mailbox is the email backend (debug mode without ``EMAIL_URL``), to staff
who may read the outbox. Read-only: the files are the mailbox (``notifications.local_mailbox``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from notifications.local_mailbox import mailbox_dir, mailbox_in_use, mailbox_message, mailbox_messages
from notifications.models import LocalMail

SHOWN = 200


@admin.register(LocalMail)
class LocalMailAdmin(admin.ModelAdmin):
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return mailbox_in_use() and request.user.has_perm("notifications.view_notification")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="notifications_localmail_changelist",
            ),
            path(
                "<str:name>/",
                self.admin_site.admin_view(self.message_view),
                name="notifications_localmail_message",
            ),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "directory": mailbox_dir(),
            **extra,
        }

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        messages, total = mailbox_messages(limit=SHOWN)
        context = self._context(request, "Sent mail (local)", mail=messages, total=total, shown=SHOWN)
        return TemplateResponse(request, "admin/notifications/localmail/list.html", context)

    def message_view(self, request: HttpRequest, name: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        message = mailbox_message(name)
        if message is None:
            raise Http404("No such email in the local mailbox.")
        context = self._context(request, message.summary.subject or "(no subject)", message=message)
        return TemplateResponse(request, "admin/notifications/localmail/message.html", context)
