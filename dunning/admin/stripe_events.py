"""The Stripe webhook inbox: read-only, filterable, with a permission-checked replay."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from customers.actors import Actor
from customers.admin_tools import IndexedValuesFilter, LargeTableAdminMixin
from dunning.models import StripeEvent
from dunning.services.stripe_sync import stripe_events_replay

REPLAY_LIMIT = 200  # each replay may call Stripe: more than this belongs to `manage.py replay_webhooks`


class EventTypeFilter(IndexedValuesFilter):
    title = "type"
    parameter_name = "type"
    source_model = StripeEvent
    source_field = "type"


@admin.register(StripeEvent)
class StripeEventAdmin(LargeTableAdminMixin, admin.ModelAdmin):
    list_display = [
        "received_at",
        "type",
        "event_id",
        "status",
        "summary",
        "source",
        "attempts",
        "processed_at",
    ]
    list_filter = ["status", EventTypeFilter, "source", "livemode"]
    search_fields = ["=event_id"]
    date_hierarchy = "received_at"
    ordering = ["-received_at", "-id"]
    actions = ["replay"]
    fields = [
        "event_id",
        "type",
        "status",
        "result",
        "error",
        "source",
        "livemode",
        "api_version",
        "stripe_created_at",
        "received_at",
        "processed_at",
        "attempts",
        "pretty_payload",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[StripeEvent]:
        # The changelist never needs the (large) payloads.
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("payload")
        return queryset

    @admin.display(description="Result or error")
    def summary(self, event: StripeEvent) -> str:
        text = event.error or event.result
        return text if len(text) <= 120 else text[:119] + "…"

    @admin.display(description="Payload")
    def pretty_payload(self, event: StripeEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("dunning.replay_stripeevent")

    @admin.action(description="Replay the selected events now", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        pks = list(
            queryset.order_by("stripe_created_at", "id").values_list("pk", flat=True)[: REPLAY_LIMIT + 1]
        )
        if len(pks) > REPLAY_LIMIT:
            self.message_user(
                request,
                f"Replay at most {REPLAY_LIMIT} events here; use `manage.py replay_webhooks` for more.",
                messages.ERROR,
            )
            return
        counts = stripe_events_replay(pks=pks, actor=Actor.staff(request.user))  # type: ignore[arg-type]
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        level = messages.WARNING if counts.get("failed") else messages.SUCCESS
        self.message_user(request, f"Replayed {len(pks)} event(s): {summary}.", level)
