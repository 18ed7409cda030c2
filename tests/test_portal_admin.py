"""Staff actions on portal links, in the admin: copy, email, revoke; permission-checked and audited."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from customers.models import AuditEvent, Customer
from dunning.admin.portal import PortalCustomerAdmin
from dunning.models import CaseEvent, CaseEventKind
from dunning.portal.tokens import LinkProblem, PortalLinkError, portal_link_for, portal_token_read
from dunning.services.cases import invoice_payment_failed
from notifications.models import Notification
from tests.factories import TEST_ACTOR, ContactFactory, CustomerFactory, InvoiceFactory, failed_invoice

pytestmark = pytest.mark.django_db


def _grant(user, *codenames: str) -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


@pytest.fixture
def staff_client(staff_user) -> Client:  # type: ignore[no-untyped-def]
    _grant(staff_user, "view_dunningcase", "view_customer", "send_portal_link")
    client = Client()
    client.force_login(staff_user)
    return client


def _links(response) -> list[str]:  # type: ignore[no-untyped-def]
    return re.findall(r'readonly value="([^"]+)"', html.unescape(response.content.decode()))


def test_the_customer_admin_is_the_portal_subclass() -> None:
    assert isinstance(admin.site._registry[Customer], PortalCustomerAdmin)


def test_copy_a_case_link_from_the_case_page(staff_client: Client, staff_user) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice()
    page = staff_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk]))
    url = reverse("admin:dunning_dunningcase_portal_link", args=[case.pk])
    assert url in page.content.decode()
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, {"do": "copy"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [link] = _links(response)
    token = portal_token_read(link.split("/portal/")[1].rstrip("/"))
    assert (token.customer_id, token.invoice_id, token.source) == (invoice.customer_id, invoice.pk, "staff")
    audit = AuditEvent.objects.get(action="portal.link_issued")
    assert (audit.customer_id, audit.actor_user_id) == (invoice.customer_id, staff_user.pk)
    event = CaseEvent.objects.get(case=case, kind=CaseEventKind.PORTAL)
    assert (event.details["action"], event.actor_label) == ("link_copied", staff_user.username)


def test_email_a_link_from_the_case_page(staff_client: Client) -> None:
    case, invoice, _ = failed_invoice()
    ContactFactory(customer=invoice.customer, email="ap@customer.example")
    url = reverse("admin:dunning_dunningcase_portal_link", args=[case.pk])
    response = staff_client.post(url, {"do": "email"})
    assert response.status_code == 302
    message = Notification.objects.get(template_key="portal_link")
    assert (message.recipient, message.customer_requested, message.status) == (
        "ap@customer.example",
        True,
        "queued",
    )
    link = re.search(r"/portal/([^/\s]+)/", message.body_text).group(1)  # type: ignore[union-attr]
    assert portal_token_read(link).source == "staff"
    assert AuditEvent.objects.filter(action="portal.link_emailed", customer=invoice.customer).exists()


def test_changelist_actions_email_each_customer_once(staff_client: Client) -> None:
    first, invoice, _ = failed_invoice()
    second = invoice_payment_failed(
        invoice=InvoiceFactory(customer=invoice.customer, gateway="simulated"),
        actor=TEST_ACTOR,
        decline_code="expired_card",
    )
    other, _, _ = failed_invoice()
    response = staff_client.post(
        reverse("admin:dunning_dunningcase_changelist"),
        {"action": "email_portal_links", "_selected_action": [first.pk, second.pk, other.pk]},  # type: ignore[union-attr]
    )
    assert response.status_code == 302
    assert Notification.objects.filter(template_key="portal_link").values("customer").distinct().count() == 2
    assert Notification.objects.filter(template_key="portal_link").count() == 2


def test_copy_links_for_selected_customers(staff_client: Client) -> None:
    customers = [CustomerFactory(), CustomerFactory()]
    response = staff_client.post(
        reverse("admin:customers_customer_changelist"),
        {"action": "copy_portal_links", "_selected_action": [c.pk for c in customers]},
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    ids = sorted(
        portal_token_read(link.split("/portal/")[1].rstrip("/")).customer_id for link in _links(response)
    )
    assert ids == sorted(c.pk for c in customers)


def test_revoke_needs_its_own_permission_and_stops_old_links(staff_client: Client, staff_user) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    old = portal_link_for(customer_id=customer.pk, source="email").split("/portal/")[1].rstrip("/")
    changelist = reverse("admin:customers_customer_changelist")
    page_url = reverse("admin:customers_customer_portal_link", args=[customer.pk])
    assert "revoke_portal_links" not in staff_client.get(changelist).content.decode()
    assert "Revoke all links" not in staff_client.get(page_url).content.decode()
    assert staff_client.post(page_url, {"do": "revoke"}).status_code == 403
    assert portal_token_read(old).customer_id == customer.pk

    _grant(staff_user, "revoke_portal_links")
    response = staff_client.post(
        changelist, {"action": "revoke_portal_links", "_selected_action": [customer.pk]}
    )
    assert response.status_code == 302
    with pytest.raises(PortalLinkError) as caught:
        portal_token_read(old)
    assert caught.value.problem == LinkProblem.REVOKED
    assert AuditEvent.objects.filter(action="portal.links_revoked", actor_user=staff_user).count() == 1


def test_without_the_permission_there_is_no_link_to_make(staff_user) -> None:  # type: ignore[no-untyped-def]
    _grant(staff_user, "view_dunningcase", "view_customer")
    client = Client()
    client.force_login(staff_user)
    case, invoice, _ = failed_invoice()
    assert client.get(reverse("admin:dunning_dunningcase_portal_link", args=[case.pk])).status_code == 403
    assert (
        client.post(
            reverse("admin:customers_customer_portal_link", args=[invoice.customer_id]), {"do": "copy"}
        ).status_code
        == 403
    )
    page = client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).content.decode()
    assert "portal-link" not in page
    response = client.post(
        reverse("admin:dunning_dunningcase_changelist"),
        {"action": "copy_portal_links", "_selected_action": [case.pk]},
    )
    assert not _links(response)
    assert not AuditEvent.objects.filter(action__startswith="portal.").exists()


def test_the_customer_page_offers_the_portal_link(admin_client: Client) -> None:
    customer = CustomerFactory()
    page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert reverse("admin:customers_customer_portal_link", args=[customer.pk]) in page
    assert (
        "Revoke all links"
        in admin_client.get(
            reverse("admin:customers_customer_portal_link", args=[customer.pk])
        ).content.decode()
    )
