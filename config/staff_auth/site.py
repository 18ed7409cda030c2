"""The admin site: Django's, refusing sessions that still owe a second factor, with the MFA pages."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.urls import path

from config.staff_auth import policy, views


class DunningAdminSite(AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        # Django's check (active staff), plus a verified second factor for those who need one. The
        # middleware sends such sessions to the MFA pages first; this is the backstop for every admin view.
        return policy.admin_access_allowed(request.user)

    def get_urls(self) -> list[Any]:
        return [
            path("mfa/", views.verify, name="mfa_verify"),
            path("mfa/enrol/", views.enrol, name="mfa_enrol"),
            path("mfa/backup-codes/", views.backup_codes, name="mfa_backup_codes"),
            *super().get_urls(),
        ]
