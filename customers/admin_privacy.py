"""Privacy actions on the customer list: export a customer's personal data as JSON, and erase it.

Thin: check the permission, confirm, call ``customers.privacy``. Erasing asks for a reason on a
confirmation page listing the customers; it cannot be undone.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from customers.actors import Actor
from customers.models import Customer
from customers.privacy import CustomerAlreadyErased, customer_data_export, customer_data_json, customer_erase

ERASE_PERMISSION = "customers.erase_customer"
EXPORT_DATA_PERMISSION = "customers.export_personal_data"
MAX_ERASED_AT_ONCE = 100


class ErasureForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        label="Why",
        help_text="Recorded in the audit log, e.g. 'erasure request by email of 2 March'. Keep names out of it.",
    )


class CustomerPrivacyAdminMixin:
    """For ``CustomerAdmin``: the ``export_personal_data`` and ``erase_personal_data`` actions."""

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ERASE_PERMISSION)

    def has_export_personal_data_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(EXPORT_DATA_PERMISSION)

    @admin.action(description="Export personal data (JSON)", permissions=["export_personal_data"])
    def export_personal_data(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
        customers = list(queryset[:2])
        if len(customers) != 1:
            self.message_user(request, "Select one customer to export.", messages.WARNING)  # type: ignore[attr-defined]
            return None
        [customer] = customers
        data = customer_data_export(customer=customer, actor=Actor.staff(request.user))
        response = HttpResponse(customer_data_json(data), content_type="application/json")
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=f"customer-{customer.external_id}-{timezone.now():%Y-%m-%d}.json"
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Erase personal data…", permissions=["erase"])
    def erase_personal_data(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
        customers = list(queryset.filter(erased_at__isnull=True).order_by("pk")[: MAX_ERASED_AT_ONCE + 1])
        if not customers:
            self.message_user(request, "Those customers were already erased.", messages.WARNING)  # type: ignore[attr-defined]
            return None
        if len(customers) > MAX_ERASED_AT_ONCE:
            self.message_user(  # type: ignore[attr-defined]
                request, f"Erase at most {MAX_ERASED_AT_ONCE} customers at a time.", messages.ERROR
            )
            return None
        form = ErasureForm(request.POST if "confirm_erasure" in request.POST else None)
        if form.is_valid():
            erased = 0
            for customer in customers:
                try:
                    customer_erase(
                        customer=customer, actor=Actor.staff(request.user), reason=form.cleaned_data["reason"]
                    )
                    erased += 1
                except CustomerAlreadyErased:
                    continue
            self.message_user(  # type: ignore[attr-defined]
                request, f"Erased the personal data of {erased} customer(s).", messages.SUCCESS
            )
            return None
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": "Erase personal data",
            "opts": self.model._meta,  # type: ignore[attr-defined]
            "customers": customers,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "erase_personal_data",
        }
        return TemplateResponse(request, "admin/customers/customer/erase_confirmation.html", context)
