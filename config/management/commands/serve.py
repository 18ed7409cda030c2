"""``make run``'s server: the web app and the django-q2 cluster together. Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the admin, the portal and the API on one address, with the task cluster beside it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-cluster", action="store_true", help="Do not start the django-q2 cluster.")

    def handle(self, *args: Any, addrport: str, no_cluster: bool, **options: Any) -> None:
        # SIGTERM (from a process manager or `timeout`) unwinds like Ctrl-C, so the cluster is stopped too.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        cluster: subprocess.Popen[bytes] | None = None
        # runserver's autoreloader re-runs this command in a child (RUN_MAIN=true); only the outer
        # process starts the cluster, so a code reload never starts a second one.
        if not no_cluster and os.environ.get("RUN_MAIN") != "true":
            cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"])
            self.stdout.write(f"Task cluster started (pid {cluster.pid}).")
        try:
            call_command("runserver", addrport)
        finally:
            if cluster is not None and cluster.poll() is None:
                cluster.terminate()
                try:
                    cluster.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    cluster.kill()
