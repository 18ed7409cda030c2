"""Writes for staff sign-in: MFA enrolment, verification, backup codes, reset, and login unlock.

Keyword-only, like every service; each change leaves an audit row (``customers.AuditEvent``, no customer).
Secrets never reach the audit log: only device ids and counts.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from axes.utils import reset as axes_reset
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device, VerifyNotAllowed
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.qr import write_qrcode_image

from customers.actors import Actor
from customers.services import audit_record

AUTHENTICATOR_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"
BACKUP_CODES = 10  # each signs in once


class MfaError(ValueError):
    """A refusal to show the staff member: a wrong code, a wait, or a step out of order."""


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    secret: str  # base32, grouped by four for typing into an app
    otpauth_url: str
    qr_data_uri: str  # an SVG image, inline: no request leaves the page


def _audit(*, actor: Actor, action: str, user: Any, **details: Any) -> None:
    audit_record(
        actor=actor, action=action, details={"user_id": user.pk, "username": user.get_username(), **details}
    )


def _qr_data_uri(text: str) -> str:
    out = io.BytesIO()
    write_qrcode_image(text, out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def mfa_enrolment_start(*, user: Any) -> Enrolment:
    """The authenticator waiting for its first code: made once, then shown again until confirmed.

    Refused when the user already has a confirmed authenticator (a reset comes first).
    """
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise MfaError("You already have an authenticator. Ask an administrator to reset it.")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    secret = base64.b32encode(device.bin_key).decode("ascii").rstrip("=")
    url = device.config_url
    return Enrolment(
        device=device,
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        otpauth_url=url,
        qr_data_uri=_qr_data_uri(url),
    )


def _refusal(device: Device) -> MfaError | None:
    allowed, data = device.verify_is_allowed()
    if allowed:
        return None
    if data and data.get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS and data.get("locked_until"):
        seconds = max(1, int((data["locked_until"] - timezone.now()).total_seconds() + 0.999))
        return MfaError(f"Too many wrong codes: wait {seconds} second(s), then try again.")
    return MfaError("This device cannot verify codes right now.")


def _new_backup_codes(user: Any) -> list[str]:
    """Replace the user's backup codes with a fresh set (the old ones stop working)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def mfa_enrolment_confirm(*, user: Any, code: str, actor: Actor) -> tuple[TOTPDevice, list[str]]:
    """Check the first code from the app, confirm the authenticator and return it with new backup codes
    (shown once; the database keeps them only to check them). Raises :class:`MfaError`."""
    code = normalise_code(code)
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
        )
        if device is None:
            raise MfaError("Start the enrolment again: no authenticator is waiting for a code.")
        refusal = _refusal(device)
        # A wrong code is counted (throttling) and committed; the error is raised after the commit.
        if refusal is None and not device.verify_token(code):
            refusal = MfaError(
                "That code is not right. Check the time on your phone and type the newest code."
            )
        if refusal is None:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            codes = _new_backup_codes(user)
            _audit(
                actor=actor,
                action="staff.mfa_enrolled",
                user=user,
                device_id=device.pk,
                backup_codes=len(codes),
            )
    if refusal is not None:
        raise refusal
    return device, codes


def normalise_code(code: str) -> str:
    """What people type: spaces and dashes dropped, letters lower-cased (backup codes are base32)."""
    return "".join(ch for ch in code if ch not in " -\t").lower()[:32]


def mfa_verify(*, user: Any, code: str, actor: Actor) -> Device:
    """Verify a code from the authenticator, or a backup code (used up by this). Returns the device that
    accepted it. Raises :class:`MfaError`; wrong codes slow the next tries down (django-otp throttling)."""
    code = normalise_code(code)
    if not code:
        raise MfaError("Type the code from your authenticator app, or one of your backup codes.")
    # Six digits come from the app; backup codes are letters and digits.
    model: type[Device] = TOTPDevice if code.isdigit() else StaticDevice
    refusal: MfaError | None = None
    with transaction.atomic():
        for device in model.objects.select_for_update().filter(user=user, confirmed=True).order_by("pk"):
            refusal = _refusal(device)
            if refusal is not None:
                break
            # A wrong code is counted (throttling) and committed; the error is raised after the commit.
            if device.verify_token(code):
                if isinstance(device, StaticDevice):
                    left = device.token_set.count()
                    _audit(actor=actor, action="staff.mfa_backup_code_used", user=user, codes_left=left)
                return device
    raise refusal or MfaError("That code is not right. Type the newest code from your app, or a backup code.")


def mfa_backup_codes_renew(*, user: Any, actor: Actor) -> list[str]:
    """A new set of backup codes for an enrolled user; the old ones stop working."""
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise MfaError("Set up an authenticator first.")
    with transaction.atomic():
        codes = _new_backup_codes(user)
        _audit(actor=actor, action="staff.mfa_backup_codes_renewed", user=user, backup_codes=len(codes))
    return codes


def backup_codes_left(*, user: Any) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def mfa_reset(*, user: Any, actor: Actor, reason: str) -> int:
    """Remove every authenticator and backup code of the user: their next admin sign-in enrols again, and
    sessions verified with the old devices stop being verified. Returns the number of devices removed."""
    if not reason.strip():
        raise MfaError("Say why the second factor is reset (a lost phone, a new device...).")
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=user).delete()[1].get(TOTPDevice._meta.label, 0)
        removed += StaticDevice.objects.filter(user=user).delete()[1].get(StaticDevice._meta.label, 0)
        _audit(
            actor=actor, action="staff.mfa_reset", user=user, devices_removed=removed, reason=reason.strip()
        )
    return removed


def staff_login_unlock(*, username: str, ip_address: str = "", actor: Actor) -> int:
    """Lift a login lockout (django-axes) now, instead of at the end of the cool-off: the user name's, and
    the client address's when given. Returns the number of records removed (0: nothing was locked)."""
    if not (username or ip_address):
        raise ValueError("Say which user name or address to unlock.")
    with transaction.atomic():
        removed = axes_reset(username=username) if username else 0
        removed += axes_reset(ip=ip_address) if ip_address else 0
        audit_record(
            actor=actor,
            action="staff.login_unlocked",
            details={"username": username, "ip_address": ip_address, "records_removed": removed},
        )
    return removed
