"""The case queue and case page: the timeline, the history, and staff actions that go through services.

What each action asks for and says afterwards is in ``case_actions.py``; the queue's filters in
``case_filters.py``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from customers.actors import Actor
from customers.admin_tools import LargeTableAdminMixin, ReadOnlyAdminMixin, admin_change_url
from customers.money import format_money
from dunning import state as machine
from dunning.admin.case_actions import ACTIONS, ACTIONS_BY_NAME, StaffAction, run_action
from dunning.admin.case_filters import (
    AmountBandFilter,
    NextActionFilter,
    PolicyFilter,
    QueueFilter,
)
from dunning.admin.portal import PortalCaseActionsMixin
from dunning.models import DunningCase
from dunning.scope import cases_visible_to
from dunning.selectors import case_retry_counts, case_timeline
from dunning.services import staff
from dunning.services.charging import ChargeRefused

SEND_PORTAL_LINK = "dunning.send_portal_link"


@admin.register(DunningCase)
class DunningCaseAdmin(PortalCaseActionsMixin, ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    # Few columns, so the queue fits a laptop screen with the sidebar open; the case page has the rest.
    list_display = ["id", "customer_link", "outstanding", "state_label", "decline", "next_action", "retries"]
    list_display_links = ["id"]
    list_select_related = ["customer", "invoice"]
    list_filter = [
        QueueFilter,
        "state",
        PolicyFilter,
        AmountBandFilter,
        NextActionFilter,
        "decline_category",
        "needs_staff_review",
    ]
    search_fields = ["=invoice__number", "=customer__external_id"]
    search_help_text = "Exact invoice number or customer external id."
    # The work first: open and paused cases (the queue's default filter) by their next action.
    ordering = [F("next_action_at").asc(nulls_last=True), "id"]
    date_hierarchy = "opened_at"
    actions = ["pause_selected", "resume_selected", "copy_portal_links", "email_portal_links"]
    readonly_fields = [
        "customer",
        "invoice",
        "policy_version",
        "state",
        "amount",
        "outstanding",
        "opened_at",
        "next_action_at",
        "retries_summary",
        "smart_retry",
        "first_decline_code",
        "decline_code",
        "decline_category",
        "hard_declined_payment_method",
        "needs_staff_review",
        "recovered_at",
        "recovery_channel",
        "recovered_amount",
        "closed_at",
    ]
    fieldsets = [
        (None, {"fields": ["customer", "invoice", "policy_version", "state", "amount", "outstanding"]}),
        ("Schedule", {"fields": ["opened_at", "next_action_at", "retries_summary", "smart_retry"]}),
        (
            "Last decline",
            {
                "fields": [
                    "decline_code",
                    "first_decline_code",
                    "decline_category",
                    "hard_declined_payment_method",
                    "needs_staff_review",
                ]
            },
        ),
        ("Outcome", {"fields": ["recovered_at", "recovery_channel", "recovered_amount", "closed_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DunningCase]:
        # Collections agents see handed-off cases only: the list, the page, actions and links alike.
        return cases_visible_to(request.user, super().get_queryset(request))

    @admin.display(description="Customer", ordering="customer__name")
    def customer_link(self, case: DunningCase) -> str:
        url = admin_change_url("admin:customers_customer_change", case.customer_id)
        return format_html('<a href="{}">{}</a>', url, case.customer.name)

    @admin.display(description="Amount at the first failure")
    def amount(self, case: DunningCase) -> str:
        return format_money(case.amount_minor, case.currency)

    @admin.display(description="Left to pay", ordering="amount_minor")
    def outstanding(self, case: DunningCase) -> str:
        invoice = case.invoice
        if invoice.is_final:
            return f"– (invoice {invoice.get_status_display().lower()})"
        return format_money(invoice.amount_due_minor - invoice.amount_paid_minor, invoice.currency)

    @admin.display(description="State", ordering="state")
    def state_label(self, case: DunningCase) -> str:
        if case.needs_staff_review:
            return format_html(
                '{} <strong class="case-flag" title="Flagged for staff review">⚑ review</strong>',
                case.get_state_display(),
            )
        return case.get_state_display()

    @admin.display(description="Smart retry")
    def smart_retry(self, case: DunningCase) -> str:
        """Why the next smart retry happens when it does (or why it is skipped), as the tick decided it."""
        timing = case.retry_timing or {}
        if not timing:
            return "–"
        if timing.get("skip"):
            return format_html('<span class="smart-retry">{}</span>', timing["skip"])
        choice = timing.get("choice") or {}
        runner_ups = choice.get("runner_ups") or []
        return format_html(
            '<div class="smart-retry"><strong>{}</strong><br><span class="quiet">Window {} – {} UTC; '
            "runners-up: {}</span></div>",
            timing.get("explanation", ""),
            (timing.get("window_start") or "")[:16].replace("T", " "),
            (timing.get("window_end") or "")[:16].replace("T", " "),
            ", ".join(
                f"{str(r.get('at', ''))[:16].replace('T', ' ')} ({float(r.get('p', 0)):.0%})"
                for r in runner_ups
                if isinstance(r, dict)
            )
            or "none",
        )

    @admin.display(description="Recovered amount")
    def recovered_amount(self, case: DunningCase) -> str:
        if case.recovered_amount_minor is None:
            return "–"
        return format_money(case.recovered_amount_minor, case.currency)

    @admin.display(description="Last decline", ordering="decline_code")
    def decline(self, case: DunningCase) -> str:
        if not case.decline_code:
            return "–"
        return format_html('{}<br><span class="quiet">{}</span>', case.decline_code, case.decline_category)

    @admin.display(description="Next action", ordering=F("next_action_at").asc(nulls_last=True))
    def next_action(self, case: DunningCase) -> str:
        if case.next_action_at is None or not case.is_active:
            return "–"
        return timezone.localtime(case.next_action_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Retries", ordering="retry_count")
    def retries(self, case: DunningCase) -> int:
        return case.retry_count

    @admin.display(description="Retries")
    def retries_summary(self, case: DunningCase) -> str:
        counts = case_retry_counts(case=case)
        return (
            f"{counts.with_result} with a result (scheduled, staff, portal and card updates); "
            f"{counts.scheduled} of {counts.cap} scheduled retries used"
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:case_id>/action/<slug:action>/",
                self.admin_site.admin_view(self.action_view),
                name="dunning_dunningcase_action",
            ),
            *super().get_urls(),
        ]

    def _offered(self, request: HttpRequest, case: DunningCase) -> list[tuple[StaffAction, str]]:
        return [
            (action, reverse("admin:dunning_dunningcase_action", args=[case.pk, action.name]))
            for action in ACTIONS
            if request.user.has_perm(action.permission) and action.offered_for(case)
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
        timeline = case_timeline(case=case)
        extra_context = {
            **(extra_context or {}),
            "timeline": timeline,
            "staff_actions": self._offered(request, case),
            "paused_until": staff.case_paused_until(case=case),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The case's own timeline: staff actions write case events, not the admin's LogEntry rows."""
        case = get_object_or_404(
            DunningCase.objects.select_related("customer", "invoice", "policy_version"), pk=object_id
        )
        if not self.has_view_or_change_permission(request, case):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": case,
            "title": f"History of case {case.pk}",
            "subtitle": None,
            "timeline": case_timeline(case=case),
            "change_url": reverse("admin:dunning_dunningcase_change", args=[case.pk]),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/dunning/dunningcase/history.html", context)

    def action_view(self, request: HttpRequest, case_id: int, action: str) -> HttpResponse:
        staff_action = ACTIONS_BY_NAME.get(action)
        if staff_action is None:
            raise PermissionDenied
        if not request.user.has_perm(staff_action.permission):
            raise PermissionDenied
        case = get_object_or_404(
            self.get_queryset(request).select_related("customer", "invoice", "policy_version"), pk=case_id
        )
        change_url = reverse("admin:dunning_dunningcase_change", args=[case.pk])
        form = staff_action.make_form(case, request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                level, message = run_action(staff_action, case, Actor.staff(request.user), form)
            except ValidationError as refusal:
                self.message_user(
                    request, "Nothing was done: " + " ".join(refusal.messages), messages.WARNING
                )
            except ChargeRefused as refusal:
                self.message_user(request, f"Nothing was charged: {refusal}", messages.WARNING)
            else:
                self.message_user(request, message, level)
            return HttpResponseRedirect(change_url)
        blocker = staff.case_retry_now_blocker(case=case) if staff_action.moves_money else ""
        invoice = case.invoice
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "case": case,
            "action": staff_action,
            "form": form,
            "blocker": blocker,
            "invoice_open": not invoice.is_final,
            "alternatives": self._alternatives(request, case, exclude=staff_action.name) if blocker else [],
            "amount": format_money(invoice.amount_due_minor - invoice.amount_paid_minor, invoice.currency),
            "title": f"{staff_action.label}: case {case.pk}",
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/dunning/dunningcase/action.html", context)

    def _alternatives(
        self, request: HttpRequest, case: DunningCase, *, exclude: str
    ) -> list[tuple[str, str]]:
        """What staff can do instead of a refused retry: a portal link for the customer, or another action."""
        offers: list[tuple[str, str]] = []
        if not case.invoice.is_final and request.user.has_perm(SEND_PORTAL_LINK):
            offers.append(
                (
                    "Send the customer a payment portal link (they can pay or change their card themselves)",
                    reverse("admin:dunning_dunningcase_portal_link", args=[case.pk]),
                )
            )
        descriptions = {
            "mark_paid": "Mark paid, if the money arrived another way",
            "pause": "Pause the case while you sort it out",
            "note": "Add a note to the timeline",
        }
        for action, url in self._offered(request, case):
            if action.name in descriptions and action.name != exclude:
                offers.append((descriptions[action.name], url))
        return offers

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
