"""Who must sign in with a second factor: every staff member holding a permission that moves money or
changes what the product trusts (the list below; superusers hold them all).

Staff without one (a finance viewer) sign in with their password alone. The check reuses the permission
cache Django fills for the admin's own checks, so it costs no query of its own on most pages.
"""

from __future__ import annotations

from typing import Any

from django_otp.plugins.otp_totp.models import TOTPDevice

# The admin's money actions and the permission each checks (see the README's role table).
MONEY_PERMISSIONS: dict[str, str] = {
    "dunning.retry_dunningcase": "retry a charge now",
    "dunning.mark_paid_dunningcase": "mark an invoice paid offline",
    "customers.import_customer": "import accounts from CSV",
    "dunning.publish_dunningpolicy": "publish a dunning policy",
    "dunning.refund_doublepayment": "refund a double payment",
    "dunning.reset_gatewaycircuit": "resume charging after a gateway outage",
    "dunning.replay_stripeevent": "replay Stripe events",
    # Deliveries are read-only in the admin: changing one means replaying it.
    "notifications.change_webhookdelivery": "replay outgoing webhook deliveries",
    "notifications.add_apikey": "create API keys",
    "notifications.change_apikey": "revoke or rename API keys",
    "notifications.add_webhookendpoint": "add webhook endpoints",
    "notifications.change_webhookendpoint": "change webhook endpoints",
    "notifications.delete_webhookendpoint": "delete webhook endpoints",
}


def holds_money_permission(user: Any) -> bool:
    return bool(user.is_superuser) or any(user.has_perm(name) for name in MONEY_PERMISSIONS)


def has_authenticator(user: Any) -> bool:
    """A confirmed authenticator app (backup codes come with it)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def mfa_required(user: Any) -> bool:
    """Does this staff member need a verified second factor in the admin?"""
    if not (getattr(user, "is_authenticated", False) and user.is_active and user.is_staff):
        return False
    return holds_money_permission(user)


def is_verified(user: Any) -> bool:
    """Was this session verified with one of the user's devices? (django-otp's middleware says.)"""
    check = getattr(user, "is_verified", None)
    return bool(check()) if callable(check) else False


def admin_access_allowed(user: Any) -> bool:
    """Active staff, verified when MFA is required of them."""
    if not (getattr(user, "is_authenticated", False) and user.is_active and user.is_staff):
        return False
    return is_verified(user) or not mfa_required(user)
