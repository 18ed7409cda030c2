"""Staff actions on payment portal links, on customers and on cases: copy a link, email a link, revoke all.

Each goes through ``dunning.portal.services`` (audited on the account and on the case timelines) and
needs its own permission (``dunning.send_portal_link``, ``dunning.revoke_portal_links``). A copied link is
a credential: the page showing it is never cached.

The customers admin lives in the ``customers`` app, which cannot import dunning; the actions are added
here by registering a subclass of it in its place.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from customers.actors import Actor
from customers.admin import CustomerAdmin
from customers.models import Customer
from dunning.models import DunningCase
from dunning.portal.services import portal_link_email, portal_link_issue, portal_links_revoke
from dunning.scope import customers_visible_to

# Links made at once from a changelist selection: enough for a batch of calls, not a bulk export.
MAX_LINKS_AT_ONCE = 20
SEND = "dunning.send_portal_link"
REVOKE = "dunning.revoke_portal_links"


def _no_store(response: HttpResponse) -> HttpResponse:
    """Never cached: a page may show a link, which is a credential.

    The referrer policy stays ``same-origin`` (the site default), not ``no-referrer``. A token is never in
    these pages' own addresses (``/admin/.../portal-link/``; a link is shown in the body), and they link to
    nothing outside the admin, so there is no token in a referrer to protect. ``no-referrer`` would break
    every form on them instead: Chromium then posts ``Origin: null`` to our own origin, and Django's CSRF
    check refuses the buttons (and the header's "Log out") with "Origin checking failed - null". The
    customers' portal pages (``/portal/<token>/``), whose address is the token, keep ``no-referrer`` and a
    CSRF check made for it (``dunning.portal.security``).
    """
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


class PortalLinkActionsMixin:
    """Changelist actions and a "Portal link" page for a ModelAdmin whose objects lead to a customer."""

    portal_links_template = "admin/dunning/portal/links.html"
    portal_page_template = "admin/dunning/portal/link_page.html"
    offers_revoke = False
    portal_select_related: tuple[str, ...] = ()

    # What the object is about: the customer, and the invoice a link should name (None: all of them).
    def portal_customer(self, obj: Any) -> Customer:
        raise NotImplementedError

    def portal_invoice_id(self, obj: Any) -> int | None:
        return None

    def has_send_portal_link_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SEND)

    def has_revoke_portal_links_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVOKE)

    # --- Changelist actions ---------------------------------------------------------------------------

    @admin.action(description="Copy portal links of the selected", permissions=["send_portal_link"])
    def copy_portal_links(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        objects = list(queryset.select_related(*self.portal_select_related)[: MAX_LINKS_AT_ONCE + 1])
        if len(objects) > MAX_LINKS_AT_ONCE:
            self.message_user(  # type: ignore[attr-defined]
                request, f"Select at most {MAX_LINKS_AT_ONCE} at a time to copy links.", messages.WARNING
            )
            return None
        actor = Actor.staff(request.user)
        rows = [
            (
                obj,
                portal_link_issue(
                    customer=self.portal_customer(obj), actor=actor, invoice_id=self.portal_invoice_id(obj)
                ),
            )
            for obj in objects
        ]
        return self._links_response(request, rows)

    @admin.action(description="Email portal links to the selected", permissions=["send_portal_link"])
    def email_portal_links(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        actor = Actor.staff(request.user)
        customers = self._customers(queryset)
        queued = sum(portal_link_email(customer=c, actor=actor) for c in customers.values())
        self.message_user(  # type: ignore[attr-defined]
            request,
            f"Queued {queued} email(s) with a fresh portal link for {len(customers)} customer(s).",
            messages.SUCCESS,
        )

    @admin.action(description="Revoke all portal links of the selected", permissions=["revoke_portal_links"])
    def revoke_portal_links(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        actor = Actor.staff(request.user)
        customers = self._customers(queryset)
        for customer in customers.values():
            portal_links_revoke(customer=customer, actor=actor)
        self.message_user(  # type: ignore[attr-defined]
            request,
            f"Every portal link sent so far to {len(customers)} customer(s) stopped working. "
            "New reminders carry new links; use “Email portal links” to send one now.",
            messages.SUCCESS,
        )

    def _customers(self, queryset: QuerySet[Any]) -> dict[int, Customer]:
        """Each customer once, however many of their cases are selected."""
        customers = (
            self.portal_customer(obj) for obj in queryset.select_related(*self.portal_select_related)
        )
        return {customer.pk: customer for customer in customers}

    # --- The "Portal link" page of one object ---------------------------------------------------------

    def get_urls(self) -> list[Any]:
        opts = self.model._meta  # type: ignore[attr-defined]
        return [
            path(
                "<path:object_id>/portal-link/",
                self.admin_site.admin_view(self.portal_link_view),  # type: ignore[attr-defined]
                name=f"{opts.app_label}_{opts.model_name}_portal_link",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def portal_link_url(self, obj: Model) -> str:
        opts = self.model._meta  # type: ignore[attr-defined]
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_portal_link", args=[obj.pk])

    def portal_link_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_send_portal_link_permission(request):
            raise PermissionDenied
        obj = get_object_or_404(self.get_queryset(request), pk=object_id)  # type: ignore[attr-defined]
        opts = self.model._meta  # type: ignore[attr-defined]
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        customer = self.portal_customer(obj)
        actor = Actor.staff(request.user)
        if request.method == "POST":
            action = request.POST.get("do")
            if action == "copy":
                link = portal_link_issue(
                    customer=customer, actor=actor, invoice_id=self.portal_invoice_id(obj)
                )
                return self._links_response(request, [(obj, link)], back_url=change_url)
            if action == "email":
                queued = portal_link_email(customer=customer, actor=actor)
                self.message_user(  # type: ignore[attr-defined]
                    request, f"Queued {queued} email(s) with a fresh portal link.", messages.SUCCESS
                )
                return HttpResponseRedirect(change_url)
            if action == "revoke" and self.offers_revoke:
                if not self.has_revoke_portal_links_permission(request):
                    raise PermissionDenied
                portal_links_revoke(customer=customer, actor=actor)
                self.message_user(  # type: ignore[attr-defined]
                    request, "Every portal link sent so far stopped working.", messages.SUCCESS
                )
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "opts": opts,
            "title": f"Portal link: {obj}",
            "object": obj,
            "customer": customer,
            "change_url": change_url,
            "can_revoke": self.offers_revoke and self.has_revoke_portal_links_permission(request),
        }
        return _no_store(TemplateResponse(request, self.portal_page_template, context))

    def _links_response(
        self, request: HttpRequest, rows: list[tuple[Any, str]], back_url: str = ""
    ) -> HttpResponse:
        opts = self.model._meta  # type: ignore[attr-defined]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "opts": opts,
            "title": "Portal links",
            "rows": rows,
            "back_url": back_url or reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        }
        return _no_store(TemplateResponse(request, self.portal_links_template, context))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        if self.has_send_portal_link_permission(request):
            opts = self.model._meta  # type: ignore[attr-defined]
            extra_context["portal_link_url"] = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_portal_link", args=[object_id]
            )
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]


class PortalCustomerAdmin(PortalLinkActionsMixin, CustomerAdmin):
    change_form_template = "admin/dunning/portal/customer_change_form.html"
    actions = [
        *(CustomerAdmin.actions or []),
        "copy_portal_links",
        "email_portal_links",
        "revoke_portal_links",
    ]
    offers_revoke = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # Collections agents see the customers of handed-off cases only.
        return customers_visible_to(request.user, super().get_queryset(request))

    def portal_customer(self, obj: Customer) -> Customer:
        return obj


class PortalCaseActionsMixin(PortalLinkActionsMixin):
    """For the case admin: links name the case's invoice; revoking belongs to the customer page."""

    portal_select_related = ("customer",)

    def portal_customer(self, obj: DunningCase) -> Customer:
        return obj.customer

    def portal_invoice_id(self, obj: DunningCase) -> int | None:
        return obj.invoice_id


admin.site.unregister(Customer)
admin.site.register(Customer, PortalCustomerAdmin)
