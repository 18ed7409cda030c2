from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from customers.admin_tools import LargeTableAdminMixin, ReadOnlyAdminMixin, admin_change_url
from customers.money import format_money
from dunning.models import PaymentAttempt, SimulatedGatewayRule


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "invoice_link",
        "number",
        "source",
        "status",
        "amount",
        "decline_code",
        "created_at",
    ]
    list_select_related = ["invoice"]
    list_filter = ["status", "source", "decline_category"]
    search_fields = ["=invoice__number", "=gateway_reference"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in PaymentAttempt._meta.fields] + ["idempotency_key"]

    @admin.display(description="Invoice", ordering="invoice__number")
    def invoice_link(self, attempt: PaymentAttempt) -> str:
        url = admin_change_url("admin:customers_invoice_change", attempt.invoice_id)
        return format_html('<a href="{}">{}</a>', url, attempt.invoice.number)

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, attempt: PaymentAttempt) -> str:
        return format_money(attempt.amount_minor, attempt.currency)


@admin.register(SimulatedGatewayRule)
class SimulatedGatewayRuleAdmin(admin.ModelAdmin):
    """Outcomes of the simulated gateway per customer: for demos and manual testing."""

    list_display = ["customer_external_id", "outcomes", "latency_ms", "fault"]
    search_fields = ["customer_external_id"]
