"""The staff roles: groups with exactly the README's table, and every money action tried by every role through
its direct URL and POST (allowed roles change something, the others change nothing)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.roles import (
    BILLING_ADMIN,
    COLLECTIONS_AGENT,
    DUNNING_OPERATOR,
    FINANCE_VIEWER,
    READS,
    ROLES,
    roles_sync,
)
from config.staff_auth.policy import MONEY_PERMISSIONS, mfa_required
from customers.actors import Actor
from customers.models import AccountImport, Customer
from dunning.models import (
    AttemptSource,
    CaseState,
    DoublePayment,
    DunningCase,
    GatewayCircuit,
    PaymentAttempt,
    PolicyVersion,
    StripeEvent,
)
from dunning.services import staff
from dunning.services.charging import attempt_charge
from dunning.services.stripe_sync.inbox import stripe_event_store
from notifications.models import ApiKey, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from notifications.services import WebhookEvent, api_key_create, webhooks_emit
from tests.factories import TEST_ACTOR, WebhookEndpointFactory, account_row, accounts_csv, failed_invoice
from tests.support.staff import StaffClient
from tests.support.stripe_account import make_event

pytestmark = pytest.mark.django_db
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def member(role: str) -> tuple[Any, Client]:
    """A staff member of one role, signed in with a verified second factor."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username=role.lower().replace(" ", "-"), password="pw", is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    client = StaffClient()
    client.force_login(user)
    return user, client


# --- The groups -----------------------------------------------------------------------------------------


def _permission_names(group: Group) -> set[str]:
    return {
        f"{app_label}.{codename}"
        for app_label, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


def test_migrate_creates_each_role_with_exactly_its_permissions() -> None:
    for name, permissions in ROLES.items():
        assert _permission_names(Group.objects.get(name=name)) == set(permissions), name


def test_migrate_puts_a_role_back_to_its_table() -> None:
    viewer = Group.objects.get(name=FINANCE_VIEWER)
    viewer.permissions.add(Permission.objects.get(codename="retry_dunningcase"))
    Group.objects.filter(name=BILLING_ADMIN).delete()
    roles_sync(group_model=Group, permission_model=Permission)
    assert _permission_names(Group.objects.get(name=FINANCE_VIEWER)) == set(READS)
    assert _permission_names(Group.objects.get(name=BILLING_ADMIN)) == set(ROLES[BILLING_ADMIN])


def test_the_readme_table_lists_exactly_each_roles_permissions() -> None:
    text = README.read_text()
    section = text[text.index("### Roles") :]
    reads = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", section[: section.index("| permission")]))
    assert reads == set(READS)
    table = section[section.index("| permission") :].split("\n\n")[0].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    documented: dict[str, set[str]] = {role: set() for role in ROLES}
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", cells[0])) or set(READS)  # "the reads above"
        for role, mark in zip(header[2:], cells[2:], strict=True):
            if mark.startswith("✓"):
                documented[role] |= names
    assert documented == {role: set(permissions) for role, permissions in ROLES.items()}


def test_the_readme_lists_every_money_permission() -> None:
    text = README.read_text()
    table = text[text.index("| money action | permission |") :].split("\n\n")[0]
    assert set(re.findall(r"`([a-z_]+\.[a-z_]+)`", table)) == set(MONEY_PERMISSIONS)


def test_the_finance_viewer_changes_nothing_and_needs_no_second_factor() -> None:
    assert all(name.split(".")[1].startswith("view_") for name in ROLES[FINANCE_VIEWER])
    user, client = member(FINANCE_VIEWER)
    assert not mfa_required(user)
    case, invoice, _ = failed_invoice()
    assert client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).status_code == 200
    response = client.post(
        reverse("admin:customers_customer_change", args=[invoice.customer_id]), {"name": "Changed"}
    )
    assert response.status_code == 403
    assert Customer.objects.get(pk=invoice.customer_id).name != "Changed"


@pytest.mark.parametrize("role", [DUNNING_OPERATOR, COLLECTIONS_AGENT, BILLING_ADMIN])
def test_every_role_that_moves_money_needs_a_second_factor(role: str) -> None:
    user, _ = member(role)
    assert mfa_required(user)
    assert any(name in MONEY_PERMISSIONS for name in ROLES[role])


# --- Every money action, by every role ------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyAction:
    allowed: frozenset[str]
    run: Callable[[Client], Any]  # set up, POST to the action's own URL; returns a check of its effect


def _retry(client: Client) -> Callable[[], bool]:
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242")
    client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"]))
    return lambda: PaymentAttempt.objects.filter(invoice=invoice).count() == 2


def _handed_off_case() -> DunningCase:
    case, _, _ = failed_invoice()
    return staff.case_hand_off(case=case, actor=TEST_ACTOR, reason="agency")


def _mark_paid(client: Client) -> Callable[[], bool]:
    case = _handed_off_case()
    client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "mark_paid"]),
        {
            "amount": "49.00",
            "paid_on": timezone.localdate().isoformat(),
            "method": "cheque",
            "reference": "cheque 12",
        },
    )
    return lambda: DunningCase.objects.get(pk=case.pk).state == CaseState.RECOVERED


def _import(client: Client) -> Callable[[], bool]:
    upload = SimpleUploadedFile("accounts.csv", accounts_csv([account_row(1)]), content_type="text/csv")
    client.post(reverse("admin:customers_customer_import"), {"file": upload})
    record = AccountImport.objects.first()
    process = reverse("admin:customers_customer_process_import")
    client.post(process, {"import_id": record.pk if record else "0" * 32, "confirm": "Confirm"})
    return lambda: Customer.objects.filter(external_id=account_row(1)["external_id"]).exists()


def _publish(client: Client) -> Callable[[], bool]:
    from dunning.models import DunningPolicy

    policy = DunningPolicy.objects.get(name="Default")
    before = policy.versions.count()
    client.post(reverse("admin:dunning_dunningpolicy_publish", args=[policy.pk]), {"notes": "v-next"})
    return lambda: PolicyVersion.objects.filter(policy=policy).count() == before + 1


def _stripe_replay(client: Client) -> Callable[[], bool]:
    stored = stripe_event_store(event=make_event("balance.available", {"id": "bal_1"}), process=False)
    client.post(
        reverse("admin:dunning_stripeevent_changelist"), {"action": "replay", "_selected_action": [stored.pk]}
    )
    return lambda: StripeEvent.objects.get(pk=stored.pk).attempts == 1


def _delivery_replay(client: Client) -> Callable[[], bool]:
    endpoint = WebhookEndpointFactory()
    event = WebhookEvent(
        event_type="case.opened", event_id="evt_1", payload={}, occurred_at=endpoint.created_at
    )
    webhooks_emit(events=[event])
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    client.post(
        reverse("admin:notifications_webhookdelivery_changelist"),
        {"action": "replay", "_selected_action": [delivery.pk]},
    )
    return lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING


def _api_key_create(client: Client) -> Callable[[], bool]:
    client.post(reverse("admin:notifications_apikey_add"), {"name": "product backend"})
    return lambda: ApiKey.objects.filter(name="product backend").exists()


def _api_key_revoke(client: Client) -> Callable[[], bool]:
    key, _ = api_key_create(name="old", actor=TEST_ACTOR)
    client.post(
        reverse("admin:notifications_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]}
    )
    return lambda: ApiKey.objects.get(pk=key.pk).revoked_at is not None


def _endpoint_add(client: Client) -> Callable[[], bool]:
    form = {
        "url": "https://93.184.216.34/hooks",
        "description": "",
        "event_types": ["case.opened"],
        "secret": "",
    }
    client.post(reverse("admin:notifications_webhookendpoint_add"), form)
    return lambda: WebhookEndpoint.objects.filter(url="https://93.184.216.34/hooks").exists()


def _endpoint_delete(client: Client) -> Callable[[], bool]:
    endpoint = WebhookEndpointFactory()
    client.post(reverse("admin:notifications_webhookendpoint_delete", args=[endpoint.pk]), {"post": "yes"})
    return lambda: not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def _double_payment_refund(client: Client) -> Callable[[], bool]:
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242")
    attempt = attempt_charge(invoice=invoice, source=AttemptSource.STAFF, actor=TEST_ACTOR)
    flag = DoublePayment.objects.create(
        attempt=attempt,
        invoice=invoice,
        customer=invoice.customer,
        case=case,
        reason="already_paid",
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        gateway=attempt.gateway,
        gateway_reference=attempt.gateway_reference,
    )
    client.post(reverse("admin:dunning_doublepayment_resolve", args=[flag.pk, "refund"]))
    return lambda: DoublePayment.objects.get(pk=flag.pk).status == "refunded"


def _circuit_close(client: Client) -> Callable[[], bool]:
    circuit = GatewayCircuit.objects.create(gateway="simulated", state="open", retry_at=timezone.now())
    client.post(
        reverse("admin:dunning_gatewaycircuit_changelist"),
        {"action": "close_selected", "_selected_action": [circuit.pk]},
    )
    return lambda: GatewayCircuit.objects.get(pk=circuit.pk).state == "closed"


MONEY_ACTIONS = {
    "retry": MoneyAction(frozenset({DUNNING_OPERATOR}), _retry),
    "mark paid": MoneyAction(frozenset({DUNNING_OPERATOR, COLLECTIONS_AGENT}), _mark_paid),
    "account import": MoneyAction(frozenset({BILLING_ADMIN}), _import),
    "policy publish": MoneyAction(frozenset({BILLING_ADMIN}), _publish),
    "Stripe replay": MoneyAction(frozenset({BILLING_ADMIN}), _stripe_replay),
    "webhook delivery replay": MoneyAction(frozenset({BILLING_ADMIN}), _delivery_replay),
    "API key create": MoneyAction(frozenset({BILLING_ADMIN}), _api_key_create),
    "API key revoke": MoneyAction(frozenset({BILLING_ADMIN}), _api_key_revoke),
    "webhook endpoint add": MoneyAction(frozenset({BILLING_ADMIN}), _endpoint_add),
    "webhook endpoint delete": MoneyAction(frozenset({BILLING_ADMIN}), _endpoint_delete),
    "double payment refund": MoneyAction(frozenset({DUNNING_OPERATOR}), _double_payment_refund),
    "circuit breaker close": MoneyAction(frozenset({DUNNING_OPERATOR}), _circuit_close),
}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("action", list(MONEY_ACTIONS))
def test_each_role_can_do_exactly_its_money_actions(role: str, action: str) -> None:
    _, client = member(role)
    happened = MONEY_ACTIONS[action].run(client)
    assert happened() == (role in MONEY_ACTIONS[action].allowed)


def test_the_money_actions_cover_every_money_permission() -> None:
    roles_with = {
        permission: {role for role, names in ROLES.items() if permission in names}
        for permission in MONEY_PERMISSIONS
    }
    assert roles_with["dunning.retry_dunningcase"] == MONEY_ACTIONS["retry"].allowed
    assert roles_with["dunning.mark_paid_dunningcase"] == MONEY_ACTIONS["mark paid"].allowed
    assert roles_with["dunning.refund_doublepayment"] == MONEY_ACTIONS["double payment refund"].allowed
    assert roles_with["dunning.reset_gatewaycircuit"] == MONEY_ACTIONS["circuit breaker close"].allowed
    operators = ("dunningcase", "doublepayment", "gatewaycircuit")
    assert all(roles <= {BILLING_ADMIN} for name, roles in roles_with.items() if not name.endswith(operators))


# --- Collections agents: handed-off cases only ----------------------------------------------------------


def test_collections_agents_see_and_work_handed_off_cases_only() -> None:
    _, client = member(COLLECTIONS_AGENT)
    handed_off = _handed_off_case()
    open_case, open_invoice, _ = failed_invoice()
    listed = client.get(reverse("admin:dunning_dunningcase_changelist")).context["cl"].result_list
    assert [case.pk for case in listed] == [handed_off.pk]
    assert client.get(reverse("admin:dunning_dunningcase_change", args=[open_case.pk])).status_code in (
        302,
        404,
    )
    for action, data in (
        ("mark_paid", {"text": "cheque"}),
        ("note", {"text": "called"}),
        ("cancel", {"text": "x"}),
    ):
        url = reverse("admin:dunning_dunningcase_action", args=[open_case.pk, action])
        assert client.post(url, data).status_code == 404
        assert (
            client.get(reverse("admin:dunning_dunningcase_portal_link", args=[open_case.pk])).status_code
            == 404
        )
    open_case.refresh_from_db()
    assert open_case.state == CaseState.OPEN and not open_case.events.filter(kind="note").exists()
    customers = client.get(reverse("admin:customers_customer_changelist")).context["cl"].result_list
    assert [customer.pk for customer in customers] == [handed_off.customer_id]
    assert client.get(
        reverse("admin:customers_customer_change", args=[open_invoice.customer_id])
    ).status_code in (
        302,
        404,
    )
    note = reverse("admin:dunning_dunningcase_action", args=[handed_off.pk, "note"])
    assert client.post(note, {"text": "promised to pay Friday"}).status_code == 302
    assert handed_off.events.filter(reason="promised to pay Friday").exists()


def test_a_superuser_in_the_collections_group_still_sees_every_case() -> None:
    user, client = member(COLLECTIONS_AGENT)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    _handed_off_case()
    failed_invoice()
    assert len(client.get(reverse("admin:dunning_dunningcase_changelist")).context["cl"].result_list) == 2


def test_actor_names_the_staff_member_on_collections_actions() -> None:
    user, client = member(COLLECTIONS_AGENT)
    case = _handed_off_case()
    client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "mark_paid"]),
        {
            "amount": "49.00",
            "paid_on": timezone.localdate().isoformat(),
            "method": "bank_transfer",
            "reference": "wire 7",
        },
    )
    note = case.events.get(reason__startswith="marked paid: €49.00 received (bank transfer, wire 7")
    assert (note.actor_user, note.actor_label) == (user, Actor.staff(user).label)


@pytest.mark.django_db(transaction=True)
def test_the_roles_are_back_after_the_flush_between_transactional_tests() -> None:
    # Transactional tests end with a flush that empties every table; migrate's post_migrate step (which the
    # flush sends too) puts the roles back, as on a fresh database.
    Group.objects.all().delete()
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    for name, permissions in ROLES.items():
        assert _permission_names(Group.objects.get(name=name)) == set(permissions), name
