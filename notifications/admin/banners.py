"""Banners (read-mostly: dunning writes them) and the API keys of the banner API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from customers.actors import Actor
from notifications.models import ApiKey, Banner
from notifications.services.banners import api_key_create, api_key_revoke, banners_clear


@admin.register(Banner)
class BannerAdmin(admin.ModelAdmin):
    list_display = ["customer", "case_ref", "severity", "message", "active", "updated_at"]
    list_select_related = ["customer"]
    list_filter = ["active", "severity"]
    search_fields = ["=customer__external_id", "=case_ref"]
    ordering = ["-updated_at", "-id"]
    actions = ["clear"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Banner._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # banners come from dunning cases

    @admin.action(description="Clear the selected banners", permissions=["change"])
    def clear(self, request: HttpRequest, queryset: QuerySet[Banner]) -> None:
        count = banners_clear(case_refs=list(queryset.values_list("case_ref", flat=True)))
        self.message_user(request, f"{count} banner(s) cleared.", messages.SUCCESS)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "created_at", "created_by", "last_used_at", "state"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["created_by"]
    search_fields = ["name", "=prefix"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["name"]
        return ["name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"]

    @admin.display(description="State")
    def state(self, key: ApiKey) -> str:
        return "active" if key.is_active else "revoked"

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # renaming only
            return
        key, token = api_key_create(name=obj.name, actor=Actor.staff(request.user))  # type: ignore[arg-type]
        obj.pk = key.pk
        obj.prefix = key.prefix
        # Shown once, on the response page; kept only on this request object, never stored.
        request._new_api_token = token  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        token = getattr(request, "_new_api_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "API key created",
            "api_key": obj,
            "token": token,
        }
        response = TemplateResponse(request, "admin/notifications/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the key's history (last use) stays visible

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = Actor.staff(request.user)  # type: ignore[arg-type]
        count = sum(api_key_revoke(api_key=key, actor=actor) for key in queryset)
        self.message_user(
            request, f"{count} key(s) revoked; they stop working immediately.", messages.SUCCESS
        )
