"""What ``make run`` needs to know about itself: the address it serves, and the local login.

Links in emails, staff copies and previews are built on ``PORTAL_BASE_URL``. Locally, when it is not set
(in the environment or in ``.env``), it follows the address ``make run ADDRESS=…`` serves, so the links
open the running server whatever its port.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

DEFAULT_ADDRESS = "127.0.0.1:8000"
# Addresses that mean "every interface": a browser cannot open them, so links use loopback instead.
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}


def local_base_url(address: str) -> str:
    """``http://host:port`` for a runserver address: ``8731``, ``127.0.0.1:8731``, ``[::1]:8731``,
    ``http://localhost:8731/`` or ``0.0.0.0:8731`` (links then use 127.0.0.1)."""
    address = address.strip().rstrip("/")
    scheme = "http"
    if "://" in address:
        scheme, address = address.split("://", 1)
    if address.isdigit():
        address = f"127.0.0.1:{address}"
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():  # no port given: runserver's default
        host, port = address, "8000"
    host = WILDCARD_HOSTS.get(host, host)
    return f"{scheme}://{host}:{port}"


def use_local_address(address: str) -> str:
    """Make links default to the served address, unless ``PORTAL_BASE_URL`` is configured.

    Sets the setting in this process and the environment variable for its children (runserver's
    autoreloading child and the task cluster, which renders the emails). Returns the base URL in use.
    """
    if os.environ.get("PORTAL_BASE_URL"):  # the environment, or .env (read into the environment)
        return str(settings.PORTAL_BASE_URL)
    url = local_base_url(address)
    settings.PORTAL_BASE_URL = url
    os.environ["PORTAL_BASE_URL"] = url
    return url


def admin_credentials(path: Path) -> tuple[str, str]:
    """The local superuser's login as ``bootstrap_local`` stored it; empty strings when missing."""
    if not path.exists():
        return "", ""
    lines = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return lines.get("username", "").strip(), lines.get("password", "").strip()
