"""Staff tasks, and the admin over the outbox: read-only, cheap on big tables, actions through services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.actors import Actor
from customers.models import AuditEvent
from notifications.models import (
    Notification,
    NotificationStatus,
    ReasonCode,
    StaffTaskStatus,
    SuppressedAddress,
)
from notifications.services import staff_task_create
from notifications.tasks import dispatch_notifications
from tests.factories import (
    BannerFactory,
    CustomerFactory,
    InvoiceFactory,
    NotificationFactory,
    StaffTaskFactory,
    WebhookEndpointFactory,
)

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "admin:notifications_notification_changelist",
    "admin:notifications_webhookdelivery_changelist",
    "admin:notifications_banner_changelist",
    "admin:notifications_stafftask_changelist",
    "admin:notifications_messagetemplate_changelist",
    "admin:notifications_suppressedaddress_changelist",
    "admin:notifications_apikey_changelist",
    "admin:notifications_webhookendpoint_changelist",
]


@pytest.fixture
def staff_group(django_user_model, settings):  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_STAFF_GROUP = "Collections"
    group = Group.objects.create(name="Collections")
    for name, email in [("kim", "kim@example.com"), ("lee", "lee@example.com"), ("noemail", "")]:
        django_user_model.objects.create_user(name, email, "pw", is_staff=True).groups.add(group)
    django_user_model.objects.create_user("outsider", "out@example.com", "pw", is_staff=True)
    return group


# --- staff tasks ----------------------------------------------------------------------------------------


def test_escalation_creates_a_task_and_emails_the_staff_group(staff_group, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    customer = CustomerFactory(name="Acme Corp", company="Acme")
    invoice = InvoiceFactory(customer=customer, number="INV-500", amount_due_minor=250000, currency="EUR")
    task = staff_task_create(
        customer_id=customer.pk,
        case_ref=31,
        title="Call Acme about INV-500",
        details="Three retries failed; the customer asked for a call.",
        invoice_id=invoice.pk,
    )
    assert task.status == StaffTaskStatus.OPEN
    rows = Notification.objects.filter(step_ref=f"staff_task:{task.pk}").order_by("recipient")
    assert [r.recipient for r in rows] == ["kim@example.com", "lee@example.com"]
    dispatch_notifications([r.pk for r in rows])
    assert sorted(m.to[0] for m in mail.outbox) == ["kim <kim@example.com>", "lee <lee@example.com>"]
    message = mail.outbox[0]
    assert message.subject == "[Example SaaS billing] Call Acme about INV-500"
    assert "INV-500, €2,500.00" in message.body
    assert f"/admin/notifications/stafftask/{task.pk}/change/" in message.body
    assert AuditEvent.objects.filter(action="staff_task.created", customer=customer).exists()


def test_the_same_open_escalation_is_not_created_twice(staff_group) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory()
    first = staff_task_create(customer_id=customer.pk, case_ref=1, title="Call them", details="")
    second = staff_task_create(customer_id=customer.pk, case_ref=1, title="Call them", details="")
    assert first.pk == second.pk
    assert Notification.objects.count() == 2  # the two group members, once


def test_a_task_can_go_to_another_group(staff_group, django_user_model) -> None:  # type: ignore[no-untyped-def]
    legal = Group.objects.create(name="Legal")
    django_user_model.objects.create_user("lawyer", "law@example.com", "pw").groups.add(legal)
    task = staff_task_create(customer_id=None, case_ref=None, title="Hand-off", details="", group="Legal")
    assert task.group_name == "Legal"
    assert list(Notification.objects.values_list("recipient", flat=True)) == ["law@example.com"]


def test_staff_mark_tasks_done_and_assign_them(admin_client, admin_user) -> None:  # type: ignore[no-untyped-def]
    task = StaffTaskFactory()
    page = admin_client.get(reverse("admin:notifications_stafftask_change", args=[task.pk]))
    assert page.status_code == 200
    admin_client.post(
        reverse("admin:notifications_stafftask_change", args=[task.pk]), {"assignee": admin_user.pk}
    )
    task.refresh_from_db()
    assert task.assignee == admin_user
    admin_client.post(
        reverse("admin:notifications_stafftask_changelist"),
        {"action": "mark_done", "_selected_action": [task.pk]},
    )
    task.refresh_from_db()
    assert (task.status, task.done_by) == (StaffTaskStatus.DONE, admin_user)
    assert AuditEvent.objects.filter(action="staff_task.done", actor_user=admin_user).exists()


def test_actions_need_the_change_permission(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    task = StaffTaskFactory()
    staff_user.user_permissions.add(Permission.objects.get(codename="view_stafftask"))
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:notifications_stafftask_changelist"),
        {"action": "mark_done", "_selected_action": [task.pk]},
    )
    assert response.status_code in (200, 302)
    task.refresh_from_db()
    assert task.status == StaffTaskStatus.OPEN


# --- the outbox admin ------------------------------------------------------------------------------------


def _rows(n: int) -> None:
    for _ in range(n):
        customer = CustomerFactory()
        NotificationFactory(customer=customer, status=NotificationStatus.SENT)
        BannerFactory(customer=customer)
        StaffTaskFactory(customer=customer)


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_changelists_render_with_a_query_count_that_does_not_grow(admin_client, url_name: str) -> None:  # type: ignore[no-untyped-def]
    url = reverse(url_name)
    _rows(3)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert admin_client.get(url).status_code == 200
    _rows(6)
    with CaptureQueriesContext(connection) as large:
        assert admin_client.get(url).status_code == 200
    assert len(small) == len(large), "\n".join(q["sql"] for q in large.captured_queries)


def test_the_outbox_is_read_only_and_searchable_by_exact_values(admin_client) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(external_id="acme-9")
    row = NotificationFactory(customer=customer, recipient="pay@acme.example", case_ref=4242)
    NotificationFactory()
    url = reverse("admin:notifications_notification_changelist")
    for term in ["pay@acme.example", "PAY@acme.example", "acme-9", "4242"]:
        page = admin_client.get(url, {"q": term}).content.decode()
        assert f"/notification/{row.pk}/change/" in page, term
        assert page.count("/change/") - page.count(f"/notification/{row.pk}/change/") < 3, term
    detail = admin_client.get(reverse("admin:notifications_notification_change", args=[row.pk]))
    assert detail.status_code == 200
    assert 'name="subject"' not in detail.content.decode()
    assert admin_client.get(reverse("admin:notifications_notification_add")).status_code == 403


def test_failed_messages_can_be_queued_again_but_not_broken_ones(
    admin_client, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFICATIONS_QUIET_HOURS_START = settings.NOTIFICATIONS_QUIET_HOURS_END = 0
    gave_up = NotificationFactory(
        status=NotificationStatus.FAILED, reason_code=ReasonCode.GAVE_UP, attempts=6
    )
    broken = NotificationFactory(status=NotificationStatus.FAILED, reason_code=ReasonCode.RENDER_ERROR)
    sent = NotificationFactory(status=NotificationStatus.SENT)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:notifications_notification_changelist"),
            {"action": "requeue", "_selected_action": [gave_up.pk, broken.pk, sent.pk]},
        )
    gave_up.refresh_from_db()
    broken.refresh_from_db()
    assert gave_up.status == NotificationStatus.SENT
    assert broken.status == NotificationStatus.FAILED
    assert len(mail.outbox) == 1


def test_staff_add_an_undeliverable_address_and_queued_mail_to_it_is_skipped(admin_client) -> None:  # type: ignore[no-untyped-def]
    queued = NotificationFactory(recipient="old@acme.example")
    response = admin_client.post(
        reverse("admin:notifications_suppressedaddress_add"),
        {"email": "Old@Acme.example", "reason": "manual", "details": "Left the company"},
    )
    assert response.status_code == 302
    assert SuppressedAddress.objects.get().email == "old@acme.example"
    queued.refresh_from_db()
    assert queued.status == NotificationStatus.SKIPPED


def test_disabled_endpoints_are_announced_on_their_list(admin_client) -> None:  # type: ignore[no-untyped-def]
    WebhookEndpointFactory(enabled=False, disabled_reason="Every delivery failed for more than 72 hours.")
    page = admin_client.get(reverse("admin:notifications_webhookendpoint_changelist")).content.decode()
    assert "Every delivery failed for more than 72 hours." in page


def test_open_tasks_are_announced_on_their_list(admin_client) -> None:  # type: ignore[no-untyped-def]
    StaffTaskFactory()
    StaffTaskFactory(status=StaffTaskStatus.DONE)
    page = admin_client.get(reverse("admin:notifications_stafftask_changelist")).content.decode()
    assert "1 task(s) are open." in page


def test_every_add_and_change_page_renders(admin_client) -> None:  # type: ignore[no-untyped-def]
    from notifications.models import ApiKey, MessageTemplate, WebhookDelivery
    from notifications.services import WebhookEvent, api_key_create, suppressed_address_add, webhooks_emit

    notification = NotificationFactory(status=NotificationStatus.SENT)
    banner = BannerFactory()
    task = StaffTaskFactory()
    endpoint = WebhookEndpointFactory()
    webhooks_emit(
        events=[WebhookEvent("case.opened", "evt_1", {"case": 1}, notification.created_at)],
    )
    api_key_create(name="k", actor=Actor.system("test"))
    suppressed_address_add(email="x@example.com", reason="manual")
    pages = {
        "notification": notification.pk,
        "banner": banner.pk,
        "stafftask": task.pk,
        "webhookendpoint": endpoint.pk,
        "webhookdelivery": WebhookDelivery.objects.get().pk,
        "apikey": ApiKey.objects.get().pk,
        "messagetemplate": MessageTemplate.objects.get(key="failure_1", locale="en").pk,
        "suppressedaddress": SuppressedAddress.objects.get().pk,
    }
    for model, pk in pages.items():
        response = admin_client.get(reverse(f"admin:notifications_{model}_change", args=[pk]))
        assert response.status_code == 200, model
    for model in ["messagetemplate", "apikey", "webhookendpoint", "suppressedaddress"]:
        assert admin_client.get(reverse(f"admin:notifications_{model}_add")).status_code == 200, model
    template_page = admin_client.get(
        reverse("admin:notifications_messagetemplate_change", args=[pages["messagetemplate"]])
    )
    assert "{{ decline_reason }}" in template_page.content.decode()
    assert "{% load %}" in template_page.content.decode()
