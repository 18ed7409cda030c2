"""The case queue and case page: timeline, and staff actions that go through services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from customers.actors import Actor
from customers.admin_tools import LargeTableAdminMixin, ReadOnlyAdminMixin, admin_change_url
from customers.currencies import MINOR_UNIT_EXPONENTS
from customers.money import format_money
from dunning import state as machine
from dunning.admin.portal import PortalCaseActionsMixin
from dunning.models import DunningCase, DunningPolicy
from dunning.scope import cases_visible_to
from dunning.selectors import case_timeline
from dunning.services import staff
from dunning.services.charging import ChargeRefused


@dataclass(frozen=True)
class StaffAction:
    name: str
    label: str
    permission: str
    event: str | None = None  # the state-machine event, to offer the action only when allowed
    needs_text: str = ""  # label of a required text field (reason, reference, note)
    moves_money: bool = False


ACTIONS = [
    StaffAction("retry", "Retry now", "dunning.retry_dunningcase", machine.Event.RECOVER, moves_money=True),
    StaffAction(
        "mark_paid",
        "Mark paid (offline)",
        "dunning.mark_paid_dunningcase",
        machine.Event.RECOVER,
        "Payment reference",
    ),
    StaffAction("pause", "Pause", "dunning.manage_dunningcase", machine.Event.PAUSE),
    StaffAction("resume", "Resume", "dunning.manage_dunningcase", machine.Event.RESUME),
    StaffAction("cancel", "Cancel dunning", "dunning.manage_dunningcase", machine.Event.CANCEL, "Reason"),
    StaffAction(
        "hand_off", "Hand off to collections", "dunning.manage_dunningcase", machine.Event.HAND_OFF, "Reason"
    ),
    StaffAction("note", "Add a note", "dunning.manage_dunningcase", None, "Note"),
]
ACTIONS_BY_NAME = {action.name: action for action in ACTIONS}


def run_action(action: StaffAction, case: DunningCase, actor: Actor, text: str) -> str:
    if action.name == "retry":
        attempt = staff.case_retry_now(case=case, actor=actor)
        return f"Charge attempt {attempt.number}: {attempt.status}" + (
            f" ({attempt.decline_code})" if attempt.decline_code else ""
        )
    if action.name == "mark_paid":
        staff.case_mark_paid(case=case, actor=actor, reference=text)
        return "Invoice marked paid; the case is recovered."
    if action.name == "pause":
        staff.case_pause(case=case, actor=actor, reason=text)
        return "Case paused."
    if action.name == "resume":
        staff.case_resume(case=case, actor=actor, reason=text)
        return "Case resumed; the remaining steps moved by the time it was paused."
    if action.name == "cancel":
        staff.case_cancel(case=case, actor=actor, reason=text)
        return "Dunning cancelled."
    if action.name == "hand_off":
        staff.case_hand_off(case=case, actor=actor, reason=text)
        return "Handed off to collections."
    staff.case_add_note(case=case, actor=actor, text=text)
    return "Note added."


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


@admin.register(DunningCase)
class DunningCaseAdmin(PortalCaseActionsMixin, ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "customer_link",
        "invoice_link",
        "amount",
        "state",
        "decline",
        "next_action_at",
        "retry_count",
        "policy_version",
        "needs_staff_review",
    ]
    list_display_links = ["id"]
    list_select_related = ["customer", "invoice", "policy_version__policy"]
    list_filter = [
        "state",
        PolicyFilter,
        AmountBandFilter,
        NextActionFilter,
        "decline_category",
        "needs_staff_review",
    ]
    search_fields = ["=invoice__number", "=customer__external_id"]
    search_help_text = "Exact invoice number or customer external id."
    ordering = ["next_action_at", "id"]
    date_hierarchy = "opened_at"
    actions = ["pause_selected", "resume_selected", "copy_portal_links", "email_portal_links"]
    readonly_fields = [
        "customer",
        "invoice",
        "policy_version",
        "state",
        "amount",
        "opened_at",
        "next_action_at",
        "retry_count",
        "decline_code",
        "decline_category",
        "hard_declined_payment_method",
        "needs_staff_review",
        "recovered_at",
        "recovery_channel",
        "recovered_amount",
        "closed_at",
    ]
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DunningCase]:
        # Collections agents see handed-off cases only: the list, the page, actions and links alike.
        return cases_visible_to(request.user, super().get_queryset(request))

    @admin.display(description="Customer", ordering="customer__name")
    def customer_link(self, case: DunningCase) -> str:
        url = admin_change_url("admin:customers_customer_change", case.customer_id)
        return format_html('<a href="{}">{}</a>', url, case.customer.name)

    @admin.display(description="Invoice", ordering="invoice__number")
    def invoice_link(self, case: DunningCase) -> str:
        url = admin_change_url("admin:customers_invoice_change", case.invoice_id)
        return format_html('<a href="{}">{}</a>', url, case.invoice.number)

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, case: DunningCase) -> str:
        return format_money(case.amount_minor, case.currency)

    @admin.display(description="Recovered amount")
    def recovered_amount(self, case: DunningCase) -> str:
        if case.recovered_amount_minor is None:
            return "–"
        return format_money(case.recovered_amount_minor, case.currency)

    @admin.display(description="Last decline", ordering="decline_code")
    def decline(self, case: DunningCase) -> str:
        return f"{case.decline_code} ({case.decline_category})" if case.decline_code else "–"

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:case_id>/action/<slug:action>/",
                self.admin_site.admin_view(self.action_view),
                name="dunning_dunningcase_action",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        case = get_object_or_404(
            self.get_queryset(request).select_related("customer", "invoice", "policy_version"), pk=object_id
        )
        available = [
            (action, reverse("admin:dunning_dunningcase_action", args=[case.pk, action.name]))
            for action in ACTIONS
            if request.user.has_perm(action.permission)
            and (action.event is None or machine.can(case.state, action.event))
        ]
        extra_context = {
            **(extra_context or {}),
            "timeline": case_timeline(case=case),
            "staff_actions": available,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def action_view(self, request: HttpRequest, case_id: int, action: str) -> HttpResponse:
        staff_action = ACTIONS_BY_NAME.get(action)
        if staff_action is None:
            raise PermissionDenied
        if not request.user.has_perm(staff_action.permission):
            raise PermissionDenied
        case = get_object_or_404(self.get_queryset(request).select_related("customer", "invoice"), pk=case_id)
        change_url = reverse("admin:dunning_dunningcase_change", args=[case.pk])
        error = ""
        if request.method == "POST":
            text = request.POST.get("text", "").strip()
            if staff_action.needs_text and not text:
                error = f"{staff_action.needs_text} is required."
            else:
                try:
                    message = run_action(staff_action, case, Actor.staff(request.user), text)
                except (ValidationError, ChargeRefused) as refusal:
                    messages_text = (
                        refusal.messages if isinstance(refusal, ValidationError) else [str(refusal)]
                    )
                    self.message_user(request, " ".join(messages_text), messages.ERROR)
                else:
                    self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "case": case,
            "action": staff_action,
            "error": error,
            "amount": format_money(
                case.invoice.amount_due_minor - case.invoice.amount_paid_minor, case.invoice.currency
            ),
            "title": f"{staff_action.label}: case {case.pk}",
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/dunning/dunningcase/action.html", context)

    def _bulk(self, request: HttpRequest, queryset: QuerySet[DunningCase], event: str, service: Any) -> None:
        if not request.user.has_perm("dunning.manage_dunningcase"):
            raise PermissionDenied
        done = skipped = 0
        for case in queryset.filter(state__in=machine.sources_for(event)):
            try:
                service(case=case, actor=Actor.staff(request.user), reason="bulk action")
                done += 1
            except ValidationError:
                skipped += 1
        skipped += queryset.exclude(state__in=machine.sources_for(event)).count()
        self.message_user(request, f"{done} case(s) changed, {skipped} left as they were.", messages.SUCCESS)

    @admin.action(description="Pause the selected cases")
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> None:
        self._bulk(request, queryset, machine.Event.PAUSE, staff.case_pause)

    @admin.action(description="Resume the selected cases")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> None:
        self._bulk(request, queryset, machine.Event.RESUME, staff.case_resume)
