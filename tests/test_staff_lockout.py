"""Admin sign-in throttling (django-axes): lockout after N failures, per user name and per address, the admin
unlock (audited), and the session lifetime."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from customers.models import AuditEvent

pytestmark = pytest.mark.django_db
LOGIN = reverse("admin:login")


@pytest.fixture
def clerk(django_user_model):  # type: ignore[no-untyped-def]
    """Staff without money permissions: the password alone opens the admin (no second factor to type)."""
    user = django_user_model.objects.create_user(username="clerk", password="right-password", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_customer"))
    return user


def attempt(username: str, password: str, address: str = "198.51.100.7"):  # type: ignore[no-untyped-def]
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})
    return client, response


def signed_in(client: Client) -> bool:
    return client.get(reverse("admin:index")).status_code == 200


def test_a_user_name_is_locked_after_the_limit_even_for_the_right_password(clerk, settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.AXES_FAILURE_LIMIT == 5
    for number in range(1, 5):
        _, response = attempt("clerk", f"guess-{number}", address=f"203.0.113.{number}")
        assert response.status_code == 200  # the login form again, with its error
        assert "Please enter the correct username and password" in response.content.decode()
    _, locked = attempt("clerk", "guess-5", address="203.0.113.5")
    assert locked.status_code == 429
    assert "Sign-in locked" in locked.content.decode() and "30 minutes" in locked.content.decode()
    assert "Content-Security-Policy" in locked  # the lockout page is an admin page too
    client, refused = attempt("clerk", "right-password", address="203.0.113.6")  # another address
    assert refused.status_code == 429
    assert not signed_in(client)


def test_an_address_failing_on_many_user_names_is_locked(clerk) -> None:  # type: ignore[no-untyped-def]
    for number in range(5):
        attempt(f"someone-{number}", "guess")
    client, refused = attempt("clerk", "right-password")  # the same address
    assert refused.status_code == 429
    client, response = attempt("clerk", "right-password", address="192.0.2.44")  # the clerk elsewhere
    assert response.status_code == 302 and signed_in(client)


def test_a_successful_sign_in_clears_the_failures(clerk) -> None:  # type: ignore[no-untyped-def]
    for _ in range(4):
        attempt("clerk", "typo")
    client, response = attempt("clerk", "right-password")
    assert response.status_code == 302 and signed_in(client)
    for _ in range(4):
        attempt("clerk", "typo")
    _, response = attempt("clerk", "right-password")
    assert response.status_code == 302  # 4 + 4 failures, never 5 in a row


def test_an_admin_unlocks_a_locked_user_and_the_unlock_is_audited(clerk, admin_client, admin_user) -> None:  # type: ignore[no-untyped-def]
    for number in range(5):
        attempt("clerk", f"guess-{number}")
    assert attempt("clerk", "right-password")[1].status_code == 429
    changelist = reverse("admin:axes_accessattempt_changelist")
    page = admin_client.get(changelist, {"locked_out": "yes"})
    assert page.status_code == 200 and "clerk" in page.content.decode()
    rows = list(AccessAttempt.objects.values_list("pk", flat=True))
    admin_client.post(changelist, {"action": "unlock", "_selected_action": rows})
    assert not AccessAttempt.objects.exists()
    client, response = attempt("clerk", "right-password")
    assert response.status_code == 302 and signed_in(client)
    event = AuditEvent.objects.get(action="staff.login_unlocked")
    assert event.actor_user == admin_user
    assert event.details["username"] == "clerk" and event.details["ip_address"] == "198.51.100.7"


def test_unlocking_needs_its_permission_and_records_cannot_be_deleted(clerk, client, staff_user) -> None:  # type: ignore[no-untyped-def]
    for number in range(5):
        attempt("clerk", f"guess-{number}")
    staff_user.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
    client.force_login(staff_user)
    changelist = reverse("admin:axes_accessattempt_changelist")
    rows = list(AccessAttempt.objects.values_list("pk", flat=True))
    client.post(changelist, {"action": "unlock", "_selected_action": rows})
    client.post(changelist, {"action": "delete_selected", "_selected_action": rows, "post": "yes"})
    assert AccessAttempt.objects.count() == len(rows)
    assert not AuditEvent.objects.filter(action="staff.login_unlocked").exists()


def test_admin_sessions_last_twelve_hours_by_default(clerk, settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    client, _ = attempt("clerk", "right-password")
    assert client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 12 * 3600


def test_a_sign_in_without_a_usable_address_is_still_counted_by_user_name(clerk, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_TRUSTED_PROXIES = 1  # the proxy's header is read, and here it holds no address
    for number in range(4):
        client = Client(REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="not-an-address")
        response = client.post(LOGIN, {"username": "clerk", "password": f"guess-{number}"})
        assert response.status_code == 200  # recorded (without an address), not a server error
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {None}
    _, locked = attempt("clerk", "guess-5")
    assert locked.status_code == 429
