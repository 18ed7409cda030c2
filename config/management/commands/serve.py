"""``make run``'s server: the web app and the django-q2 cluster together. Ctrl-C stops both.

Once the server listens it prints the admin address and the local login (``bootstrap_local`` stored it),
so they are the last lines in the terminal, and where emails go. Links in emails follow the served
address unless ``PORTAL_BASE_URL`` is set (``config.local_run``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.core.management.commands.runserver import Command as RunserverCommand
from django.urls import reverse

from config.local_run import DEFAULT_ADDRESS, admin_credentials, local_base_url, use_local_address


def ready_lines(address: str) -> list[str]:
    """What ``serve`` prints once the server listens: where to log in, with what, and where mail goes."""
    base = local_base_url(address)
    lines = [f"Admin:    {base}/admin/"]
    username, password = admin_credentials(settings.LOCAL_STATE_DIR / "admin-credentials.txt")
    if settings.DEBUG and username and password:
        lines.append(f"Login:    {username} / {password}")
    if settings.EMAIL_BACKEND == "notifications.local_mailbox.LocalMailboxBackend":
        lines.append(
            f"Emails:   {base}{reverse('admin:notifications_localmail_changelist')} (nothing is sent)"
        )
    return lines


class QuietRunserver(RunserverCommand):
    """runserver, whose banner ends with the admin login instead of a paragraph about production."""

    def on_bind(self, server_port: int) -> None:
        host = f"[{self.addr}]" if self._raw_ipv6 else ("0.0.0.0" if self.addr == "0" else self.addr)
        address = f"{host}:{server_port}"
        self.stdout.write(
            f"Serving http://{address}/ with the task cluster (development server, not for production). "
            "Ctrl-C stops both."
        )
        for line in ready_lines(address):
            self.stdout.write(self.style.SUCCESS(line))


class Command(BaseCommand):
    help = "Serve the admin, the portal and the API on one address, with the task cluster beside it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("addrport", nargs="?", default=DEFAULT_ADDRESS)
        parser.add_argument("--no-cluster", action="store_true", help="Do not start the django-q2 cluster.")

    def handle(self, *args: Any, addrport: str, no_cluster: bool, **options: Any) -> None:
        # SIGTERM (from a process manager or `timeout`) unwinds like Ctrl-C, so the cluster is stopped too.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        # Before the cluster starts: it renders the emails, and inherits the environment.
        use_local_address(addrport)
        cluster: subprocess.Popen[bytes] | None = None
        # runserver's autoreloader re-runs this command in a child (RUN_MAIN=true); only the outer
        # process starts the cluster, so a code reload never starts a second one.
        if not no_cluster and os.environ.get("RUN_MAIN") != "true":
            cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"])
        try:
            call_command(QuietRunserver(), addrport)
        finally:
            if cluster is not None and cluster.poll() is None:
                cluster.terminate()
                try:
                    cluster.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    cluster.kill()
