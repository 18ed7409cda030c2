"""Filters of the case queue. The queue shows open and paused cases unless a state or "All cases" is chosen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from customers.currencies import MINOR_UNIT_EXPONENTS
from dunning.models import CaseState, DunningCase, DunningPolicy

ACTIVE_STATES = (CaseState.OPEN, CaseState.PAUSED)


WORK_STATES = (*ACTIVE_STATES, CaseState.HANDED_OFF)


class QueueFilter(admin.SimpleListFilter):
    """Open, paused and handed-off cases by default: the work (collections agents see only the last kind).
    "All cases" (or choosing a state) shows the others."""

    title = "queue"
    parameter_name = "queue"
    ALL = "all"

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        # Choosing a state (or a flag that outlives the case, like a review) overrides the default queue.
        self.overridden = any(key.startswith("state") for key in request.GET)
        super().__init__(request, params, model, model_admin)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(self.ALL, "All cases")]

    def choices(self, changelist: Any) -> Any:
        showing_all = self.value() == self.ALL or self.overridden
        yield {
            "selected": not showing_all,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Open, paused, handed off",
        }
        yield {
            "selected": self.value() == self.ALL,
            "query_string": changelist.get_query_string({self.parameter_name: self.ALL}),
            "display": "All cases",
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> QuerySet[DunningCase]:
        if self.value() == self.ALL or self.overridden:
            return queryset
        return queryset.filter(state__in=WORK_STATES)


class AmountBandFilter(admin.SimpleListFilter):
    """Bands in major units of each case's own currency (¥ and € bands mean the same numbers)."""

    title = "amount"
    parameter_name = "amount"
    BANDS = {"lt100": (0, 100), "100-1k": (100, 1000), "1k-10k": (1000, 10000), "gte10k": (10000, None)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [
            ("lt100", "under 100"),
            ("100-1k", "100 – 1,000"),
            ("1k-10k", "1,000 – 10,000"),
            ("gte10k", "10,000 and more"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> QuerySet[DunningCase]:
        band = self.BANDS.get(self.value() or "")
        if band is None:
            return queryset
        low, high = band
        condition = Q()
        for exponent in sorted(set(MINOR_UNIT_EXPONENTS.values())):
            currencies = [code for code, exp in MINOR_UNIT_EXPONENTS.items() if exp == exponent]
            part = Q(currency__in=currencies, amount_minor__gte=low * 10**exponent)
            if high is not None:
                part &= Q(amount_minor__lt=high * 10**exponent)
            condition |= part
        return queryset.filter(condition)


class NextActionFilter(admin.SimpleListFilter):
    title = "next action"
    parameter_name = "next"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [
            ("due", "Due now"),
            ("today", "Within 24 hours"),
            ("week", "Within 7 days"),
            ("none", "Nothing scheduled"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> QuerySet[DunningCase]:
        now = timezone.now()
        value = self.value()
        if value == "due":
            return queryset.filter(state="open", next_action_at__lte=now)
        if value == "today":
            return queryset.filter(next_action_at__lte=now + timedelta(days=1))
        if value == "week":
            return queryset.filter(next_action_at__lte=now + timedelta(days=7))
        if value == "none":
            return queryset.filter(next_action_at__isnull=True)
        return queryset


class PolicyFilter(admin.SimpleListFilter):
    title = "policy"
    parameter_name = "policy"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in DunningPolicy.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> QuerySet[DunningCase]:
        if self.value():
            return queryset.filter(policy_version__policy_id=self.value())
        return queryset
