"""Staff sessions for the admin tests: signed in, with a verified second factor, as after a real sign-in.

The admin asks staff who hold a money permission for a second factor (config/staff_auth/). Tests that log a
staff member in with ``force_login`` get the second step too: the user gets a confirmed authenticator and
the session records it as verified, exactly what django-otp's ``login`` stores. Nothing is switched off:
a plain ``django.test.Client`` logged in with ``force_login`` still meets the MFA gate.
"""

from __future__ import annotations

from typing import Any

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice


def authenticator_for(user: Any) -> TOTPDevice:
    """The user's confirmed authenticator, made when missing."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)


def verify_second_factor(client: Client, user: Any) -> TOTPDevice:
    """Mark the client's (already signed-in) session as verified with the user's authenticator."""
    device = authenticator_for(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


class StaffClient(Client):
    """A test client whose ``force_login`` also verifies a second factor for staff members."""

    def force_login(self, user: Any, backend: str | None = None, *, second_factor: bool = True) -> None:
        super().force_login(user, backend)
        if second_factor and user.is_staff:
            verify_second_factor(self, user)
