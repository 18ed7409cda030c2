"""The back office's admin site: Django's, with a home page that answers "what needs me today?"."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.response import TemplateResponse

from config.staff_auth.site import DunningAdminSite


class BackOfficeAdminSite(DunningAdminSite):
    """The MFA-gated site (config/staff_auth/site.py), with the home page."""

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from config.home import admin_home  # the models of every app are loaded by now

        extra_context = {**(extra_context or {}), "home": admin_home(user=request.user)}
        return super().index(request, extra_context)
