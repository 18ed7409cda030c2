"""First-run setup for ``make run``: migrate, load demo data once, and make a staff login."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.local_run import DEFAULT_ADDRESS, admin_credentials, local_base_url, use_local_address

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Migrate, load the demo data the first time, create the local superuser and print its login."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--address",
            default=DEFAULT_ADDRESS,
            help="Where the server will listen (make run's ADDRESS): the printed admin address, and the "
            "base of links in the demo's emails unless PORTAL_BASE_URL is set.",
        )
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo data.")

    def handle(self, *args: Any, address: str, no_demo: bool, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("bootstrap_local is for local use: set DJANGO_DEBUG=true (make run does).")
        # Before the demo data: its replayed emails carry portal links.
        use_local_address(address)
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database is migrated.")

        marker = settings.LOCAL_STATE_DIR / "demo-loaded"
        if not no_demo and not marker.exists():
            call_command("seed_demo", stdout=self.stdout)
            marker.write_text("The demo data was loaded once; delete this file to load it again.\n")

        call_command("sync_schedules", stdout=self.stdout)
        username, password = self._ensure_superuser(settings.LOCAL_STATE_DIR / "admin-credentials.txt")
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Admin:    {local_base_url(address)}/admin/"))
        self.stdout.write(self.style.SUCCESS(f"Login:    {username}"))
        self.stdout.write(self.style.SUCCESS(f"Password: {password}"))
        self.stdout.write(f"(stored in {settings.LOCAL_STATE_DIR / 'admin-credentials.txt'}, git-ignored)")
        self.stdout.write(
            "The first sign-in sets up two-step sign-in with an authenticator app on your phone; "
            f"to start that over: python manage.py reset_mfa {username} --reason 'new phone'"
        )

    def _ensure_superuser(self, credentials_file: Path) -> tuple[str, str]:
        """Reuse the stored password; make a new random one only when the file or the user is missing."""
        user_model = get_user_model()
        _, password = admin_credentials(credentials_file)
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if user is not None and password and user.check_password(password):
            return ADMIN_USERNAME, password
        password = secrets.token_urlsafe(12)
        if user is None:
            user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        credentials_file.parent.mkdir(parents=True, exist_ok=True)
        credentials_file.write_text(f"username: {ADMIN_USERNAME}\npassword: {password}\n")
        credentials_file.chmod(0o600)
        return ADMIN_USERNAME, password
