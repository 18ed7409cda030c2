"""Erasing a customer on request leaves no personal value in any table and keeps the money; exporting a
customer's data gathers every app's rows; both are audited. Through the services, the admin and the commands.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from customers.accounts_csv.services import accounts_import
from customers.actors import Actor
from customers.models import AccountImport, AuditEvent, Customer, Invoice
from customers.privacy import CustomerAlreadyErased, Erasure, customer_data_export, customer_erase
from customers.signals import customer_erasing
from dunning.models import CaseEvent, CaseEventKind, DunningCase, PaymentAttempt
from dunning.portal.services import portal_visit_record
from dunning.portal.tokens import LinkProblem, PortalLinkError, portal_link_for, portal_token_read
from dunning.services.staff import case_add_note
from dunning.services.stripe_sync import stripe_event_store
from dunning.services.tick import run_tick
from notifications.models import Notification, NotificationStatus, SuppressedAddress, WebhookDelivery
from notifications.services import notifications_dispatch, staff_task_create, suppressed_address_add
from tests.factories import ContactFactory, CustomerFactory, WebhookEndpointFactory, failed_invoice
from tests.factories.accounts_csv import account_row, accounts_csv
from tests.support.stripe_account import make_event

pytestmark = pytest.mark.django_db
STAFF = Actor.system("privacy test")
# Values found nowhere else in the suite's data, so a match anywhere is a leak.
NAME = "Zenobia Quillfeather"
EMAIL = "zenobia.quill@erasure.example"
COMPANY = "Quillfeather Orchards"
CONTACT_NAME = "Bartholomew Inkwell"
CONTACT_EMAIL = "b.inkwell@erasure.example"
PERSONAL = (NAME, EMAIL, COMPANY, CONTACT_NAME, CONTACT_EMAIL)


def _everything_about_one_customer() -> tuple[Customer, DunningCase]:
    """A customer as a real history leaves them: imported, renamed, dunned, mailed, bounced, visiting the
    portal, noted by staff, known to Stripe."""
    columns = ["external_id", "name", "email", "company", "currency"]
    first = account_row(1, external_id="zq-1", name="Zenobia Q", email=EMAIL)
    renamed = account_row(1, external_id="zq-1", name=NAME, email=EMAIL, company=COMPANY)
    # Imported, then renamed by a second import: the audit row keeps the old and the new name.
    for row in (first, renamed):
        accounts_import(source=io.BytesIO(accounts_csv([row], columns=columns)), actor=STAFF)
    customer = Customer.objects.get(external_id="zq-1")
    Customer.objects.filter(pk=customer.pk).update(gateway_customer_id="cus_Zq1")
    customer.refresh_from_db()
    ContactFactory(customer=customer, name=CONTACT_NAME, email=CONTACT_EMAIL)
    WebhookEndpointFactory(event_types=["case.opened", "notification.sent"])
    case, invoice, _ = failed_invoice(customer=customer, failed_at=timezone.now() - timedelta(hours=2))
    run_tick(now=timezone.now())
    queued = list(Notification.objects.filter(customer=customer).values_list("pk", flat=True))
    notifications_dispatch(notification_ids=queued)
    suppressed_address_add(
        email=CONTACT_EMAIL, reason="hard_bounce", details=f"550 no such user {CONTACT_EMAIL}"
    )
    link = portal_token_read(
        portal_link_for(customer_id=customer.pk, invoice_id=invoice.pk, source="email").split("/portal/")[1][
            :-1
        ]
    )
    portal_visit_record(link=link, case_ids=[case.pk])
    case_add_note(case=case, actor=STAFF, text=f"{CONTACT_NAME} promised to pay; wrote from {EMAIL}")
    staff_task_create(
        customer_id=customer.pk, case_ref=case.pk, title=f"Call {NAME}", details=f"{COMPANY} asked"
    )
    stripe_event_store(
        event=make_event(
            "customer.updated",
            {
                "id": "cus_Zq1",
                "object": "customer",
                "name": NAME,
                "email": EMAIL,
                "address": {"line1": "1 Quill Lane"},
            },
        ),
        process=False,
    )
    AccountImport.objects.create(
        original_name="bad.csv",
        size_bytes=10,
        sha256="0" * 64,
        expires_at=timezone.now(),
        report={"errors": [{"line": 2, "column": "email", "value": f"{CONTACT_EMAIL}x", "message": "bad"}]},
    )
    return customer, case


def _leaks(values: tuple[str, ...]) -> list[str]:
    """Every text and JSON column of every model of every installed app that still holds a value."""
    found = []
    wanted = [v.lower() for v in values]
    for model in apps.get_models():
        columns = [
            f.attname
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField)
        ]
        if not columns:
            continue
        for row in model._default_manager.values("pk", *columns):
            for column in columns:
                text = json.dumps(row[column], ensure_ascii=False).lower()
                found += [f"{model._meta.label}.{column} #{row['pk']}: {v}" for v in wanted if v in text]
    return found


def _money(customer: Customer) -> dict[str, Any]:
    return {
        "invoices": list(
            Invoice.objects.filter(customer=customer).values_list("pk", "amount_due_minor", "status")
        ),
        "cases": list(
            DunningCase.objects.filter(customer=customer).values_list("pk", "amount_minor", "state")
        ),
        "attempts": list(
            PaymentAttempt.objects.filter(invoice__customer=customer).values_list(
                "pk", "amount_minor", "status"
            )
        ),
        "audit_rows": AuditEvent.objects.filter(customer=customer).count(),
    }


def test_erasure_leaves_no_personal_value_in_any_table_and_keeps_the_money() -> None:
    customer, case = _everything_about_one_customer()
    other = CustomerFactory(name="Unrelated Person", email="someone@else.example")
    # The history really holds the values everywhere the erasure must look.
    before = _leaks(PERSONAL)
    for table in (
        "customers.Customer",
        "customers.Contact",
        "customers.AuditEvent",
        "customers.AccountImport",
        "notifications.Notification",
        "notifications.SuppressedAddress",
        "notifications.StaffTask",
        "dunning.CaseEvent",
        "dunning.StripeEvent",
    ):
        assert any(leak.startswith(table) for leak in before), table
    assert Notification.objects.filter(customer=customer, status=NotificationStatus.SENT).exists()
    assert WebhookDelivery.objects.exists()
    money = _money(customer)
    visits = CaseEvent.objects.filter(case=case, kind=CaseEventKind.PORTAL).count()
    assert visits == 1

    report = customer_erase(customer=customer, actor=STAFF, reason=f"request from {EMAIL} of 2 March")

    assert _leaks(PERSONAL) == []
    after = _money(customer)
    assert after["invoices"] == money["invoices"]
    assert after["cases"] == money["cases"]
    assert after["attempts"] == money["attempts"] and after["attempts"]
    assert after["audit_rows"] == money["audit_rows"] + 1  # every audit row kept, plus the erasure's
    assert not CaseEvent.objects.filter(case=case, kind=CaseEventKind.PORTAL).exists()
    customer.refresh_from_db()
    assert customer.name == f"Erased customer {customer.pk}" and customer.erased_at is not None
    assert (customer.external_id, customer.gateway_customer_id) == ("zq-1", "cus_Zq1")
    event = AuditEvent.objects.get(action="customer.erased")
    assert (event.customer_id, event.actor_label, event.reason) == (
        customer.pk,
        "privacy test",
        "request from [erased] of 2 March",
    )
    assert event.details["rows"] == {table: n for table, n in report.rows.items() if n}
    assert event.details["rows"]["dunning.caseevent.portal_visits_deleted"] == 1
    stripe = apps.get_model("dunning", "StripeEvent").objects.get(type="customer.updated")
    assert stripe.payload["data"]["object"]["id"] == "cus_Zq1"  # ids stay for the accounts
    assert stripe.payload["data"]["object"]["address"] is None
    # Someone else's data is untouched.
    other.refresh_from_db()
    assert (other.name, other.email) == ("Unrelated Person", "someone@else.example")


def test_an_erased_customers_links_stop_working_and_queued_messages_never_go() -> None:
    case, invoice, _ = failed_invoice(name=NAME, email=EMAIL)
    token = portal_link_for(customer_id=case.customer_id, invoice_id=invoice.pk, source="email").split(
        "/portal/"
    )[1][:-1]
    run_tick(now=timezone.now())
    queued = Notification.objects.filter(customer_id=case.customer_id, status=NotificationStatus.QUEUED)
    assert queued.exists()
    customer_erase(customer=case.customer, actor=STAFF, reason="request")
    assert not queued.exists()
    with pytest.raises(PortalLinkError) as refused:
        portal_token_read(token)
    assert refused.value.problem == LinkProblem.REVOKED


def test_erasure_is_all_or_nothing() -> None:
    customer = CustomerFactory(name=NAME, email=EMAIL)
    ContactFactory(customer=customer, name=CONTACT_NAME, email=CONTACT_EMAIL)

    def broken(sender: Any, erasure: Erasure, **kwargs: Any) -> dict[str, int]:
        raise RuntimeError("an app could not erase its rows")

    customer_erasing.connect(broken, dispatch_uid="test.broken")
    try:
        with pytest.raises(RuntimeError):
            customer_erase(customer=customer, actor=STAFF, reason="request")
    finally:
        customer_erasing.disconnect(dispatch_uid="test.broken")
    customer.refresh_from_db()
    assert (customer.name, customer.email, customer.erased_at) == (NAME, EMAIL, None)
    assert customer.contacts.count() == 1
    assert not AuditEvent.objects.filter(action="customer.erased").exists()


def test_erasure_needs_a_reason_and_happens_once() -> None:
    customer = CustomerFactory(name=NAME)
    with pytest.raises(ValueError, match="Say why"):
        customer_erase(customer=customer, actor=STAFF, reason="  ")
    customer_erase(customer=customer, actor=STAFF, reason="request")
    with pytest.raises(CustomerAlreadyErased):
        customer_erase(customer=customer, actor=STAFF, reason="again")
    assert AuditEvent.objects.filter(action="customer.erased").count() == 1


def test_an_undeliverable_address_another_customer_still_uses_stays_marked() -> None:
    customer = CustomerFactory(email="shared@erasure.example")
    CustomerFactory(email="Shared@erasure.example")
    suppressed_address_add(email="shared@erasure.example", reason="hard_bounce")
    customer_erase(customer=customer, actor=STAFF, reason="request")
    assert SuppressedAddress.objects.filter(email="shared@erasure.example").exists()


def test_the_export_holds_every_app_s_rows_about_the_customer_and_is_audited() -> None:
    customer, case = _everything_about_one_customer()
    data = customer_data_export(customer=customer, actor=STAFF)
    assert data["customer"]["name"] == NAME
    assert [c["email"] for c in data["contacts"]] == [CONTACT_EMAIL]
    assert {row["id"] for row in data["dunning_cases"]} == {case.pk}
    assert data["payment_attempts"] and data["invoices"] and data["case_events"]
    assert any(
        row["recipient"] == CONTACT_EMAIL and CONTACT_NAME in row["body_text"]
        for row in data["notifications"]
    )
    assert [row["payload"]["data"]["object"]["name"] for row in data["stripe_events"]] == [NAME]
    assert data["staff_tasks"][0]["title"] == f"Call {NAME}"
    assert [row["email"] for row in data["undeliverable_addresses"]] == [CONTACT_EMAIL]
    assert data["webhook_deliveries"] and all('"zq-1"' in row["body"] for row in data["webhook_deliveries"])
    exported = AuditEvent.objects.get(action="customer.data_exported")
    assert exported.details["sections"]["notifications"] == len(data["notifications"])


# --- Admin --------------------------------------------------------------------------------------------------------


def _grant(user, *codenames: str) -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


CHANGELIST = reverse("admin:customers_customer_changelist")


def test_the_admin_erases_after_a_confirmation_with_a_reason(client: Client, staff_user) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(name=NAME, email=EMAIL)
    _grant(staff_user, "view_customer", "change_customer", "erase_customer")
    client.force_login(staff_user)
    action = {"action": "erase_personal_data", "_selected_action": [customer.pk]}
    confirm = client.post(CHANGELIST, action)
    assert confirm.status_code == 200 and "This cannot be undone" in confirm.content.decode()
    assert client.post(CHANGELIST, {**action, "confirm_erasure": "1", "reason": ""}).status_code == 200
    customer.refresh_from_db()
    assert customer.erased_at is None  # no reason, no erasure
    done = client.post(CHANGELIST, {**action, "confirm_erasure": "1", "reason": "request by email"})
    assert done.status_code == 302
    customer.refresh_from_db()
    assert customer.erased_at is not None and customer.email == ""
    event = AuditEvent.objects.get(action="customer.erased")
    assert (event.actor_user, event.reason) == (staff_user, "request by email")


def test_the_admin_actions_need_their_own_permissions(client: Client, staff_user) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(name=NAME)
    _grant(staff_user, "view_customer", "change_customer", "delete_customer", "export_customer")
    client.force_login(staff_user)
    page = client.get(CHANGELIST).content.decode()
    assert "erase_personal_data" not in page and "export_personal_data" not in page
    for action in ("erase_personal_data", "export_personal_data"):
        answer = client.post(
            CHANGELIST,
            {"action": action, "_selected_action": [customer.pk], "confirm_erasure": "1", "reason": "x"},
        )
        assert answer.status_code in (200, 302) and answer.get("Content-Type") != "application/json"
    customer.refresh_from_db()
    assert customer.erased_at is None
    assert not AuditEvent.objects.filter(action__in=["customer.erased", "customer.data_exported"]).exists()


def test_the_admin_exports_one_customer_as_json(client: Client, staff_user) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(name=NAME, external_id="zq-9")
    _grant(staff_user, "view_customer", "export_personal_data")
    client.force_login(staff_user)
    response = client.post(CHANGELIST, {"action": "export_personal_data", "_selected_action": [customer.pk]})
    assert response["Content-Type"] == "application/json"
    assert 'filename="customer-zq-9-' in response["Content-Disposition"]
    assert json.loads(response.content)["customer"]["name"] == NAME
    assert AuditEvent.objects.get(action="customer.data_exported").actor_user == staff_user


# --- Commands -------------------------------------------------------------------------------------------------------


def test_the_commands_export_and_erase(tmp_path) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(name=NAME, external_id="zq-7")
    target = tmp_path / "zq-7.json"
    call_command("export_customer_data", "zq-7", str(target), stderr=io.StringIO())
    assert json.loads(target.read_text())["customer"]["name"] == NAME
    with pytest.raises(CommandError, match="already exists"):
        call_command("export_customer_data", "zq-7", str(target), stderr=io.StringIO())
    out = io.StringIO()
    call_command("erase_customer", "zq-7", "--reason", "request", "--yes", stdout=out)
    assert "Erased zq-7" in out.getvalue() and "customers.customer: 1" in out.getvalue()
    customer.refresh_from_db()
    assert customer.erased_at is not None
    with pytest.raises(CommandError, match="already erased") as again:
        call_command("erase_customer", "zq-7", "--reason", "request", "--yes")
    assert again.value.returncode == 2
    with pytest.raises(CommandError, match="No customer"):
        call_command("erase_customer", "nobody", "--reason", "request", "--yes")


def test_an_import_cannot_bring_an_erased_customer_back() -> None:
    columns = ["external_id", "name", "email", "currency"]
    row = account_row(1, external_id="zq-5", name=NAME, email=EMAIL)
    accounts_import(source=io.BytesIO(accounts_csv([row], columns=columns)), actor=STAFF)
    customer_erase(customer=Customer.objects.get(external_id="zq-5"), actor=STAFF, reason="request")
    report = accounts_import(
        source=io.BytesIO(accounts_csv([account_row(2, external_id="zq-6"), row], columns=columns)),
        actor=STAFF,
    )
    assert not report.written
    assert [(e.line, e.column) for e in report.errors] == [(3, "external_id")]
    assert "erased on request" in report.errors[0].message
    assert _leaks(PERSONAL) == []
    assert not Customer.objects.filter(external_id="zq-6").exists()  # all or nothing, as always
