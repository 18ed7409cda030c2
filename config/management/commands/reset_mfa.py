"""``python manage.py reset_mfa USERNAME --reason TEXT``: remove a staff member's second factor."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.staff_auth.services import MfaError, mfa_reset
from customers.actors import Actor


class Command(BaseCommand):
    help = (
        "Remove every authenticator and backup code of a staff member (a lost phone): their sessions stop "
        "being verified, and their next admin sign-in enrols a new authenticator. Audited."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username", help="The staff member's user name.")
        parser.add_argument("--reason", required=True, help="Why, for the audit log (e.g. 'lost phone').")

    def handle(self, *args: Any, username: str, reason: str, **options: Any) -> None:
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            removed = mfa_reset(user=user, actor=Actor.command("reset_mfa"), reason=reason)
        except MfaError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Removed {removed} device(s) of {username}. Their next admin sign-in sets up a new authenticator."
        )
