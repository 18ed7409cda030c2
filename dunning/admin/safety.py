"""Admin for money safety: double payments to refund, and the gateway circuit breaker."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from customers.actors import Actor
from customers.admin_tools import ReadOnlyAdminMixin, admin_change_url
from customers.money import format_money
from dunning.models import CircuitState, DoublePayment, DoublePaymentStatus, GatewayCircuit
from dunning.services.circuit import circuit_close
from dunning.services.double_payments import RESOLVABLE, double_payment_dismiss, double_payment_refund

REFUND_PERMISSION = "dunning.refund_doublepayment"


class OpenFilter(admin.SimpleListFilter):
    title = "to do"
    parameter_name = "todo"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Waiting for staff"), ("done", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DoublePayment]) -> QuerySet[DoublePayment]:
        if self.value() == "open":
            return queryset.filter(status__in=RESOLVABLE)
        if self.value() == "done":
            return queryset.exclude(status__in=RESOLVABLE)
        return queryset


@admin.register(DoublePayment)
class DoublePaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "detected_at",
        "invoice_link",
        "customer",
        "amount",
        "reason",
        "status",
        "attempt_link",
    ]
    list_select_related = ["invoice", "customer"]
    list_filter = [OpenFilter, "status", "reason"]
    search_fields = ["=invoice__number", "=customer__external_id", "=gateway_reference"]
    readonly_fields = [
        "attempt_link",
        "invoice_link",
        "customer",
        "case_link",
        "reason",
        "status",
        "amount",
        "gateway",
        "gateway_reference",
        "detected_at",
        "refund_reference",
        "refund_error",
        "resolved_at",
        "resolved_by",
        "resolution_note",
        "details",
    ]
    fields = readonly_fields
    actions = ["refund_selected"]

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, flag: DoublePayment) -> str:
        return format_money(flag.amount_minor, flag.currency)

    @admin.display(description="Invoice", ordering="invoice__number")
    def invoice_link(self, flag: DoublePayment) -> str:
        url = admin_change_url("admin:customers_invoice_change", flag.invoice_id)
        return format_html('<a href="{}">{}</a>', url, flag.invoice.number)

    @admin.display(description="Attempt")
    def attempt_link(self, flag: DoublePayment) -> str:
        url = admin_change_url("admin:dunning_paymentattempt_change", flag.attempt_id)
        return format_html('<a href="{}">{}</a>', url, flag.attempt_id)

    @admin.display(description="Case")
    def case_link(self, flag: DoublePayment) -> str:
        if flag.case_id is None:
            return "–"
        return format_html(
            '<a href="{}">{}</a>',
            admin_change_url("admin:dunning_dunningcase_change", flag.case_id),
            flag.case_id,
        )

    @admin.action(
        description="Refund the selected double payments through the gateway", permissions=["refund"]
    )
    def refund_selected(self, request: HttpRequest, queryset: QuerySet[DoublePayment]) -> None:
        done, failed = 0, []
        for flag in queryset.filter(status__in=RESOLVABLE).order_by("id"):
            result = double_payment_refund(flag=flag, actor=Actor.staff(request.user))  # type: ignore[arg-type]
            if result.status == DoublePaymentStatus.REFUNDED:
                done += 1
            else:
                failed.append(f"{flag.pk}: {result.refund_error}")
        if done:
            self.message_user(request, f"Refunded {done} double payment(s).", messages.SUCCESS)
        for line in failed:
            self.message_user(request, f"Refund failed for {line}", messages.WARNING)

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REFUND_PERMISSION)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:flag_id>/resolve/<slug:how>/",
                self.admin_site.admin_view(self.resolve_view),
                name="dunning_doublepayment_resolve",
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
        flag = get_object_or_404(DoublePayment, pk=object_id)
        can_resolve = flag.status in RESOLVABLE and request.user.has_perm(REFUND_PERMISSION)
        extra_context = {
            **(extra_context or {}),
            "resolve_links": [
                ("Refund now", reverse("admin:dunning_doublepayment_resolve", args=[flag.pk, "refund"])),
                (
                    "Dismiss (no refund)",
                    reverse("admin:dunning_doublepayment_resolve", args=[flag.pk, "dismiss"]),
                ),
            ]
            if can_resolve
            else [],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def resolve_view(self, request: HttpRequest, flag_id: int, how: str) -> HttpResponse:
        if not request.user.has_perm(REFUND_PERMISSION):
            raise PermissionDenied
        flag = get_object_or_404(DoublePayment.objects.select_related("invoice", "customer"), pk=flag_id)
        if how not in ("refund", "dismiss"):
            raise PermissionDenied
        change_url = reverse("admin:dunning_doublepayment_change", args=[flag.pk])
        error = ""
        if request.method == "POST":
            actor = Actor.staff(request.user)  # type: ignore[arg-type]
            try:
                if how == "refund":
                    flag = double_payment_refund(flag=flag, actor=actor)
                else:
                    flag = double_payment_dismiss(
                        flag=flag, actor=actor, reason=request.POST.get("reason", "")
                    )
            except ValidationError as exc:
                error = " ".join(exc.messages)
            else:
                if flag.status == DoublePaymentStatus.REFUND_FAILED:
                    self.message_user(
                        request, f"The gateway refused the refund: {flag.refund_error}", messages.WARNING
                    )
                else:
                    self.message_user(
                        request, f"Double payment {flag.pk}: {flag.get_status_display()}.", messages.SUCCESS
                    )
                return HttpResponseRedirect(change_url)
        return TemplateResponse(
            request,
            "admin/dunning/doublepayment/resolve.html",
            {
                **self.admin_site.each_context(request),
                "title": "Refund a double payment" if how == "refund" else "Dismiss a double payment",
                "flag": flag,
                "how": how,
                "amount": format_money(flag.amount_minor, flag.currency),
                "change_url": change_url,
                "error": error,
                "opts": self.model._meta,
            },
        )


class PausedFilter(admin.SimpleListFilter):
    title = "charging"
    parameter_name = "paused"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Paused (open or probing)"), ("no", "Running")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[GatewayCircuit]) -> QuerySet[GatewayCircuit]:
        if self.value() == "yes":
            return queryset.exclude(state=CircuitState.CLOSED)
        if self.value() == "no":
            return queryset.filter(state=CircuitState.CLOSED)
        return queryset


@admin.register(GatewayCircuit)
class GatewayCircuitAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_filter = [PausedFilter]
    list_display = [
        "gateway",
        "state",
        "retry_at",
        "window_failures",
        "window_calls",
        "times_opened",
        "last_error",
    ]
    readonly_fields = [f.name for f in GatewayCircuit._meta.fields]
    actions = ["close_selected"]

    @admin.action(
        description="Close the breaker: the gateway is back (charging resumes)", permissions=["reset"]
    )
    def close_selected(self, request: HttpRequest, queryset: QuerySet[GatewayCircuit]) -> None:
        closed = [circuit.gateway for circuit in queryset if circuit_close(gateway=circuit.gateway)]
        self.message_user(request, f"Closed: {', '.join(closed) or 'none was open'}.", messages.SUCCESS)

    def has_reset_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("dunning.reset_gatewaycircuit")
