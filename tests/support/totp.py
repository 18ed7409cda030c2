"""Codes an authenticator app would show, computed from a device's key (RFC 6238, django-otp's own maths)."""

from __future__ import annotations

import time

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


def totp_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code for now, or for a later 30-second step (a device accepts one step ahead, and each step
    once: a second sign-in within the same step needs the next step's code)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"
