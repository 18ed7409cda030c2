"""Admin for finance staff: customers, invoices, payment methods and the audit log.

CSV import and export of customers: see ``customers/admin_csv.py``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from customers.admin_csv import AccountCsvAdminMixin
from customers.admin_privacy import CustomerPrivacyAdminMixin
from customers.admin_tools import (
    IndexedValuesFilter,
    LargeTableAdminMixin,
    ReadOnlyAdminMixin,
    admin_change_url,
)
from customers.currencies import minor_unit_exponent
from customers.models import (
    AuditEvent,
    Contact,
    Customer,
    EntitlementState,
    Invoice,
    InvoiceStatus,
    PaymentMethod,
)
from customers.money import format_money, to_major_units
from customers.selectors import customer_open_balances, customer_overdue_balances

ENTITLEMENT_COLOURS = {
    EntitlementState.ACTIVE: "#1a7f37",
    EntitlementState.PAST_DUE: "#9a6700",
    EntitlementState.DEGRADED: "#bc4c00",
    EntitlementState.SUSPENDED: "#cf222e",
    EntitlementState.CANCELLED: "#57606a",
}


class SegmentFilter(IndexedValuesFilter):
    title = "segment"
    parameter_name = "segment"
    source_model = Customer
    source_field = "segment"


class CustomerCurrencyFilter(IndexedValuesFilter):
    title = "currency"
    parameter_name = "currency"
    source_model = Customer
    source_field = "currency"


# Invoices are filtered by currency too, but the choices come from customers: a far smaller table
# holding the same set of currencies in practice.
InvoiceCurrencyFilter = CustomerCurrencyFilter


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        overdue = {"status": InvoiceStatus.OPEN, "due_at__lt": timezone.now()}
        if self.value() == "yes":
            return queryset.filter(**overdue)
        if self.value() == "no":
            return queryset.exclude(**overdue)
        return queryset


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ["role", "name", "email"]


class PaymentMethodInline(admin.TabularInline):
    """Read-only: brand, digits, expiry and ids come from the gateway (the portal, its webhooks, imports)."""

    model = PaymentMethod
    extra = 0
    fields = ["method", "type", "expiry", "gateway_payment_method_id", "is_default"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Payment method")
    def method(self, payment_method: PaymentMethod) -> str:
        label = payment_method.brand.title() if payment_method.brand else payment_method.get_type_display()
        return f"{label} •••• {payment_method.last4}" if payment_method.last4 else label

    @admin.display(description="Expiry")
    def expiry(self, payment_method: PaymentMethod) -> str:
        if not (payment_method.exp_month and payment_method.exp_year):
            return "–"
        return f"{payment_method.exp_month:02d}/{payment_method.exp_year}"


class RecentInvoicesFormSet(BaseInlineFormSet):
    """Only the latest invoices: a customer may have thousands, and the page must stay small."""

    recent_count = 10

    def get_queryset(self) -> QuerySet[Invoice]:
        if not hasattr(self, "_recent_queryset"):
            self._recent_queryset = super().get_queryset().order_by("-due_at", "-id")[: self.recent_count]
        return self._recent_queryset


class RecentInvoiceInline(admin.TabularInline):
    model = Invoice
    formset = RecentInvoicesFormSet
    verbose_name_plural = "Recent invoices (latest 10)"
    fields = ["invoice_link", "amount", "status", "due_at", "paid_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Invoice")
    def invoice_link(self, invoice: Invoice) -> str:
        url = reverse("admin:customers_invoice_change", args=[invoice.pk])
        return format_html('<a href="{}">{}</a>', url, invoice.number)

    @admin.display(description="Amount")
    def amount(self, invoice: Invoice) -> str:
        return format_money(invoice.amount_due_minor, invoice.currency)


@admin.register(Customer)
class CustomerAdmin(CustomerPrivacyAdminMixin, AccountCsvAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    # Few columns, so the list fits a laptop screen with the sidebar open; the customer page has the rest.
    list_display = ["external_id", "name_and_company", "email", "segment", "currency", "entitlement"]
    list_display_links = ["external_id", "name_and_company"]
    search_fields = ["external_id", "name", "email", "company"]
    list_filter = ["entitlement_state", SegmentFilter, CustomerCurrencyFilter]
    readonly_fields = [
        "open_balance",
        "overdue_balance",
        "invoices_link",
        "created_at",
        "updated_at",
        "erased_at",
    ]
    inlines = [ContactInline, PaymentMethodInline, RecentInvoiceInline]
    actions = ["export_personal_data", "erase_personal_data"]
    fieldsets = [
        (None, {"fields": ["external_id", "name", "email", "company", "entitlement_state"]}),
        ("Balance", {"fields": ["open_balance", "overdue_balance", "invoices_link"]}),
        ("Billing", {"fields": ["segment", "currency", "locale", "time_zone", "gateway_customer_id"]}),
        ("Record", {"fields": ["created_at", "updated_at", "erased_at"], "classes": ["collapse"]}),
    ]

    history_limit = 200

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The account's audit log: services write audit rows, not the admin's LogEntry."""
        customer = get_object_or_404(Customer, pk=object_id)
        if not self.has_view_or_change_permission(request, customer):
            raise PermissionDenied
        events = list(
            AuditEvent.objects.filter(customer=customer)
            .select_related("invoice")
            .order_by("-occurred_at", "-id")[: self.history_limit]
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": customer,
            "title": f"History of {customer}",
            "subtitle": None,
            "events": events,
            "limit": self.history_limit,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/customers/customer/history.html", context)

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None) -> list[str]:
        # Entitlement follows the dunning cases; editing it by hand would bypass the audit trail.
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("entitlement_state")
        return fields

    @admin.display(description="Name", ordering="name")
    def name_and_company(self, customer: Customer) -> str:
        if not customer.company:
            return customer.name
        return format_html('{}<br><span class="quiet">{}</span>', customer.name, customer.company)

    @admin.display(description="Entitlement", ordering="entitlement_state")
    def entitlement(self, customer: Customer) -> str:
        colour = ENTITLEMENT_COLOURS.get(customer.entitlement_state, "inherit")
        return format_html(
            '<strong style="color:{}">{}</strong>', colour, customer.get_entitlement_state_display()
        )

    @admin.display(description="Open balance")
    def open_balance(self, customer: Customer) -> str:
        if customer.pk is None:
            return "–"
        balances = customer_open_balances(customer=customer)
        if not balances:
            return "Nothing to pay"
        return ", ".join(format_money(amount, currency) for currency, amount in balances.items())

    @admin.display(description="Overdue balance")
    def overdue_balance(self, customer: Customer) -> str:
        if customer.pk is None:
            return "–"
        balances = customer_overdue_balances(customer=customer)
        if not balances:
            return "Nothing overdue"
        return ", ".join(format_money(amount, currency) for currency, amount in balances.items())

    @admin.display(description="All invoices")
    def invoices_link(self, customer: Customer) -> str:
        if customer.pk is None:
            return "–"
        url = reverse("admin:customers_invoice_changelist") + f"?customer__id__exact={customer.pk}"
        return format_html('<a href="{}">All invoices of this customer</a>', url)


class InvoiceAdminForm(forms.ModelForm):
    """Staff type amounts in major units (12.50); the model stores minor units (1250)."""

    amount_due = forms.DecimalField(
        min_value=Decimal(0),
        max_digits=18,
        decimal_places=4,
        help_text="In the invoice currency, e.g. 49.00.",
    )

    class Meta:
        model = Invoice
        # amount_due_minor/amount_paid_minor are set from amount_due; payments change only via services.
        fields = [
            "customer",
            "number",
            "status",
            "currency",
            "due_at",
            "period_start",
            "period_end",
            "lines",
            "gateway",
            "gateway_invoice_id",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and self.instance.is_final:
            del self.fields["amount_due"]
        elif self.instance.pk is not None:
            self.fields["amount_due"].initial = to_major_units(
                self.instance.amount_due_minor, self.instance.currency
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        amount, currency = cleaned.get("amount_due"), cleaned.get("currency") or self.instance.currency
        if amount is not None and currency:
            try:
                exponent = minor_unit_exponent(currency)
            except ValueError:
                return cleaned  # the currency field already carries its own error
            minor = amount.scaleb(exponent)
            if minor != minor.to_integral_value():
                self.add_error("amount_due", f"{currency} amounts have at most {exponent} decimal places.")
            else:
                self.instance.amount_due_minor = int(minor)
        return cleaned


@admin.register(Invoice)
class InvoiceAdmin(LargeTableAdminMixin, admin.ModelAdmin):
    form = InvoiceAdminForm
    list_display = ["number", "customer_link", "amount", "paid", "status", "due_at", "gateway"]
    list_select_related = ["customer"]
    list_filter = ["status", InvoiceCurrencyFilter, OverdueFilter]
    search_fields = ["number", "customer__external_id", "gateway_invoice_id"]
    search_help_text = "Exact invoice number, customer external id or gateway invoice id."
    date_hierarchy = "due_at"
    autocomplete_fields = ["customer"]
    ordering = ["-due_at", "-id"]
    readonly_fields = ["amount_formatted", "paid_formatted", "paid_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["customer", "number", "status"]}),
        ("Amounts", {"fields": ["currency", "amount_due", "amount_formatted", "paid_formatted"]}),
        (
            "Dates",
            {"fields": ["due_at", "period_start", "period_end", "paid_at", "created_at", "updated_at"]},
        ),
        ("Details", {"fields": ["lines", "gateway", "gateway_invoice_id"]}),
    ]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Invoice], search_term: str
    ) -> tuple[QuerySet[Invoice], bool]:
        # Exact, case-sensitive matches only, so each term is one index lookup even at a million rows
        # (Django's default search would run ILIKE '%term%' over every row).
        term = search_term.strip()
        if not term:
            return queryset, False
        # The customer id is resolved first (one index probe) so PostgreSQL can OR three index scans
        # together; a join or an IN (subquery) makes it walk the whole table instead.
        customer_ids = list(Customer.objects.filter(external_id=term).values_list("pk", flat=True))
        matches = Q(number=term) | Q(customer_id__in=customer_ids) | Q(gateway_invoice_id=term)
        return queryset.filter(matches), False

    def get_readonly_fields(self, request: HttpRequest, obj: Invoice | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Status, amount and currency change only through services (payments, void), which audit it.
            fields += ["status", "currency", "customer"]
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Invoice | None = None) -> list[tuple[Any, dict]]:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.is_final:
            return fieldsets
        # A paid, void or uncollectible invoice's amount is history: shown, not editable.
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != "amount_due"]})
            for name, options in fieldsets
        ]

    @admin.display(description="Customer", ordering="customer__name")
    def customer_link(self, invoice: Invoice) -> str:
        url = admin_change_url("admin:customers_customer_change", invoice.customer_id)
        return format_html('<a href="{}">{}</a>', url, invoice.customer.name)

    @admin.display(description="Amount due", ordering="amount_due_minor")
    def amount(self, invoice: Invoice) -> str:
        return format_money(invoice.amount_due_minor, invoice.currency)

    @admin.display(description="Paid", ordering="amount_paid_minor")
    def paid(self, invoice: Invoice) -> str:
        return format_money(invoice.amount_paid_minor, invoice.currency) if invoice.amount_paid_minor else "–"

    @admin.display(description="Amount due (formatted)")
    def amount_formatted(self, invoice: Invoice) -> str:
        return format_money(invoice.amount_due_minor, invoice.currency) if invoice.pk else "–"

    @admin.display(description="Amount paid")
    def paid_formatted(self, invoice: Invoice) -> str:
        return format_money(invoice.amount_paid_minor, invoice.currency) if invoice.pk else "–"


class ExpiringSoonFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("expired", "Expired"), ("60d", "Expires within 60 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[PaymentMethod]) -> QuerySet[PaymentMethod]:
        today = timezone.now().date()
        month_index = F("exp_year") * 12 + F("exp_month")
        now_index = today.year * 12 + today.month
        if self.value() == "expired":
            return queryset.alias(month_index=month_index).filter(month_index__lt=now_index)
        if self.value() == "60d":
            return queryset.alias(month_index=month_index).filter(
                month_index__gte=now_index, month_index__lte=now_index + 2
            )
        return queryset


@admin.register(PaymentMethod)
class PaymentMethodAdmin(LargeTableAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "customer", "type", "expiry", "is_default", "gateway_payment_method_id"]
    list_select_related = ["customer"]
    list_filter = ["type", "is_default", ExpiringSoonFilter]
    search_fields = ["=customer__external_id", "=gateway_payment_method_id", "last4"]
    autocomplete_fields = ["customer"]
    readonly_fields = ["created_at", "updated_at"]
    # What the gateway reports about a method is never typed in by hand once it exists.
    GATEWAY_FIELDS = ["type", "brand", "last4", "exp_month", "exp_year", "gateway_payment_method_id"]

    def get_readonly_fields(self, request: HttpRequest, obj: PaymentMethod | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields if obj is None else [*self.GATEWAY_FIELDS, "customer", *fields]

    @admin.display(description="Expiry")
    def expiry(self, method: PaymentMethod) -> str:
        if not (method.exp_month and method.exp_year):
            return "–"
        return f"{method.exp_month:02d}/{method.exp_year}"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "action", "actor", "customer", "invoice", "reason"]
    list_select_related = ["customer", "invoice"]
    list_filter = ["actor_type"]
    search_fields = ["=customer__external_id", "=action"]
    date_hierarchy = "occurred_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    @admin.display(description="Actor")
    def actor(self, event: AuditEvent) -> str:
        return (
            f"{event.get_actor_type_display()}: {event.actor_label}"
            if event.actor_label
            else event.actor_type
        )
