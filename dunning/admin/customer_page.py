"""The customer page for finance: the account's open cases, last messages (with opens and clicks) and
visits to the payment portal, next to its balance.

The customers admin cannot read dunning or notifications (they sit above it), so the sections are added
here, by registering a subclass of the customer admin (with its portal-link actions) in its place.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from customers.models import Customer
from dunning.admin.portal import PortalCustomerAdmin
from dunning.selectors import customer_dunning


class CustomerFinanceAdmin(PortalCustomerAdmin):
    change_form_template = "admin/dunning/customer_finance_change_form.html"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        if object_id.isdigit() and request.user.has_perm("dunning.view_dunningcase"):
            extra_context["dunning"] = customer_dunning(customer_id=int(object_id))
        return super().change_view(request, object_id, form_url, extra_context)


admin.site.unregister(Customer)
admin.site.register(Customer, CustomerFinanceAdmin)
