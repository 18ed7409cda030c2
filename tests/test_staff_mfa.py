"""Admin MFA: who must use it, first-login enrolment, codes and backup codes, the gate, and the reset command."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.staff_auth.policy import MONEY_PERMISSIONS, mfa_required
from customers.models import AuditEvent
from dunning.models import CaseState, PaymentAttempt
from tests.factories import failed_invoice
from tests.support.totp import totp_code

pytestmark = pytest.mark.django_db
ADMIN = reverse("admin:index")
ENROL = reverse("admin:mfa_enrol")
VERIFY = reverse("admin:mfa_verify")
BACKUP = reverse("admin:mfa_backup_codes")


def grant(user, *names: str):  # type: ignore[no-untyped-def]
    for name in names:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return type(user).objects.get(pk=user.pk)  # without the permission cache


def sign_in(client: Client, username: str, password: str = "pw", next_url: str = ADMIN):  # type: ignore[no-untyped-def]
    """The password step, through the admin's own login form."""
    return client.post(
        reverse("admin:login"), {"username": username, "password": password, "next": next_url}, follow=True
    )


def enrol(client: Client, user) -> list[str]:  # type: ignore[no-untyped-def]
    client.get(ENROL)  # makes the authenticator that waits for its first code
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    page = client.post(ENROL, {"code": totp_code(device), "next": ADMIN})
    assert page.status_code == 200
    return re.findall(r"<li><code>([a-z2-7]{8})</code></li>", page.content.decode())


@pytest.mark.parametrize("permission", sorted(MONEY_PERMISSIONS))
def test_every_money_permission_requires_mfa(staff_user, permission: str) -> None:  # type: ignore[no-untyped-def]
    assert not mfa_required(staff_user)
    assert mfa_required(grant(staff_user, permission))


def test_a_money_permission_without_a_verified_second_factor_is_refused_the_admin(staff_user) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242")
    staff_user = grant(staff_user, "dunning.view_dunningcase", "dunning.retry_dunningcase")
    client = Client()
    client.force_login(staff_user)  # a password sign-in, no second factor
    retry = reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"])
    for url in (
        ADMIN,
        reverse("admin:dunning_dunningcase_changelist"),
        retry,
        reverse("reporting:dashboard"),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(ENROL + "?next=")
    response = client.post(retry)  # straight to the money action
    assert response.status_code == 302 and response["Location"].startswith(ENROL)
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1  # only the failed first charge
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    # Once enrolled, the same session must still type a code on its next visit: no shortcut around it.
    TOTPDevice.objects.create(user=staff_user, name="phone", confirmed=True)
    assert client.get(ADMIN)["Location"].startswith(VERIFY + "?next=")


def test_staff_without_money_permissions_use_the_admin_with_their_password_alone(staff_user) -> None:  # type: ignore[no-untyped-def]
    staff_user = grant(staff_user, "dunning.view_dunningcase", "reporting.view_dashboard")
    client = Client()
    client.force_login(staff_user)
    assert client.get(reverse("admin:dunning_dunningcase_changelist")).status_code == 200
    assert client.get(ENROL)["Location"] == ADMIN  # nothing to enrol for


def test_first_sign_in_enrols_an_authenticator_and_shows_backup_codes_once(django_user_model) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    landed = sign_in(client, "boss", next_url=reverse("admin:customers_customer_changelist"))
    assert landed.redirect_chain[-1][0].startswith(ENROL + "?next=")
    page = landed.content.decode()
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert 'src="data:image/svg+xml;base64,' in page  # the QR code is inline: no request leaves the page
    secret = re.search(r'<code class="mfa-secret" id="mfa-secret">([A-Z2-7 ]+)</code>', page).group(1)
    assert secret.replace(" ", "") in device.config_url  # the key typed by hand is the QR code's
    assert f'href="{device.config_url.replace("&", "&amp;")}"' in page  # a phone opens its own app
    assert landed["Cache-Control"].startswith("max-age=0") and "no-store" in landed["Cache-Control"]

    wrong = client.post(ENROL, {"code": "000000"})
    assert "That code is not right" in wrong.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    device.throttle_reset()  # the wrong code made the next try wait (tested below)

    done = client.post(
        ENROL, {"code": totp_code(device), "next": reverse("admin:customers_customer_changelist")}
    )
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "shown only now" in done.content.decode()
    assert reverse("admin:customers_customer_changelist") in done.content.decode()
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(reverse("admin:customers_customer_changelist")).status_code == 200
    # Never shown again: the page for backup codes only counts them.
    assert not re.findall(r"<li><code>", client.get(BACKUP).content.decode())
    assert client.get(ENROL)["Location"].startswith(VERIFY)  # no second authenticator without a reset
    event = AuditEvent.objects.get(action="staff.mfa_enrolled")
    assert (event.actor_user, event.details["backup_codes"]) == (user, 10)
    assert not any(code in str(event.details) for code in codes)


def test_a_later_sign_in_asks_for_a_code_or_takes_a_backup_code_once(django_user_model) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    first = Client()
    sign_in(first, "boss")
    codes = enrol(first, user)

    second = Client()
    landed = sign_in(second, "boss", next_url=reverse("admin:dunning_dunningcase_changelist"))
    assert landed.redirect_chain[-1][0].startswith(VERIFY + "?next=")
    device = TOTPDevice.objects.get(user=user)
    answer = second.post(
        VERIFY,
        {"code": totp_code(device, steps_ahead=1), "next": reverse("admin:dunning_dunningcase_changelist")},
    )
    assert answer["Location"] == reverse("admin:dunning_dunningcase_changelist")
    assert second.get(ADMIN).status_code == 200

    third = Client()
    sign_in(third, "boss")
    assert third.post(VERIFY, {"code": codes[0].upper()})["Location"] == ADMIN  # typed in capitals
    assert StaticToken.objects.filter(device__user=user).count() == 9
    used = AuditEvent.objects.get(action="staff.mfa_backup_code_used")
    assert used.details["codes_left"] == 9

    fourth = Client()
    sign_in(fourth, "boss")
    refused = fourth.post(VERIFY, {"code": codes[0]})
    assert refused.status_code == 200 and "not right" in refused.content.decode()
    assert fourth.get(ADMIN).status_code == 302


def test_wrong_codes_make_the_next_try_wait(django_user_model) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    sign_in(client, "boss")
    assert "not right" in client.post(VERIFY, {"code": "123456"}).content.decode()
    device = TOTPDevice.objects.get(user=user)
    assert device.throttling_failure_count == 1  # counted, although the request failed
    waiting = client.post(VERIFY, {"code": totp_code(device)})
    assert "Too many wrong codes: wait" in waiting.content.decode()
    assert client.get(ADMIN).status_code == 302


def test_the_next_address_must_be_ours(django_user_model) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    sign_in(client, "boss")
    answer = client.post(VERIFY, {"code": totp_code(device), "next": "https://evil.example/admin/"})
    assert answer["Location"] == ADMIN


def test_backup_codes_can_be_renewed_after_verifying(admin_client, admin_user) -> None:  # type: ignore[no-untyped-def]
    assert "0</strong> unused backup codes" in admin_client.get(BACKUP).content.decode()
    page = admin_client.post(BACKUP).content.decode()
    fresh = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", page)
    assert len(fresh) == 10
    assert set(StaticToken.objects.filter(device__user=admin_user).values_list("token", flat=True)) == set(
        fresh
    )
    assert AuditEvent.objects.filter(action="staff.mfa_backup_codes_renewed", actor_user=admin_user).exists()


def test_unverified_sessions_cannot_renew_backup_codes(django_user_model) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    client.force_login(user)
    assert client.post(BACKUP)["Location"].startswith(VERIFY)
    assert not StaticDevice.objects.filter(user=user).exists()


def test_the_mfa_pages_send_anonymous_visitors_to_the_login() -> None:
    for url in (ENROL, VERIFY, BACKUP):
        assert Client().get(url)["Location"].startswith(reverse("admin:login"))


def test_reset_mfa_removes_the_devices_ends_verified_sessions_and_is_audited(
    admin_client, admin_user
) -> None:  # type: ignore[no-untyped-def]
    admin_client.post(BACKUP)
    assert admin_client.get(ADMIN).status_code == 200
    out = StringIO()
    call_command("reset_mfa", admin_user.username, "--reason", "lost phone", stdout=out)
    assert "Removed 2 device(s)" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=admin_user).exists()
    assert not StaticDevice.objects.filter(user=admin_user).exists()
    assert admin_client.get(ADMIN)["Location"].startswith(ENROL)  # the old session is no longer verified
    event = AuditEvent.objects.get(action="staff.mfa_reset")
    assert event.actor_type == "system" and event.actor_label.startswith("reset_mfa (run by ")
    assert event.details == {
        "user_id": admin_user.pk,
        "username": admin_user.username,
        "devices_removed": 2,
        "reason": "lost phone",
    }


def test_reset_mfa_refuses_unknown_users_and_a_blank_reason(admin_user) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("reset_mfa", "nobody", "--reason", "x", stdout=StringIO())
    with pytest.raises(CommandError, match="Say why"):
        call_command("reset_mfa", admin_user.username, "--reason", "  ", stdout=StringIO())
