"""``make run`` from a fresh checkout, left running for two minutes: the login is still on screen.

The checkout is a copy of the project's files (what a clone of this tree would hold, without ``var/``,
``.env`` or a database), run with this test's virtualenv so nothing is installed. It is stopped with
SIGINT, as Ctrl-C would. ``MAKE_RUN_SECONDS`` changes how long it runs (default 120).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = int(os.environ.get("MAKE_RUN_SECONDS", "120"))
SCREEN = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fresh_checkout(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        source = PROJECT_ROOT / raw.decode()
        if source.is_file():
            (target / raw.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / raw.decode())


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL", "").strip()) and not os.environ["DATABASE_URL"].startswith("sqlite"),
    reason="make run always uses SQLite: the SQLite run of the suite covers it (CI runs it there)",
)
def test_make_run_still_shows_the_login_after_two_minutes(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    _fresh_checkout(checkout)
    venv = Path(sys.prefix)
    stamp = venv / ".installed-stamp"
    if stamp.exists():  # make must not reinstall this virtualenv from the copy
        older = stamp.stat().st_mtime - 1
        os.utime(checkout / "pyproject.toml", (older, older))
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "PORTAL_", "EMAIL_", "REDIS_URL", "Q_"))
    }
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the terminal as they are printed, as on a tty
    output = tmp_path / "make-run.log"
    with output.open("wb") as terminal:
        process = subprocess.Popen(
            ["make", "run", f"VENV={venv}", f"ADDRESS=127.0.0.1:{port}"],
            cwd=checkout,
            env=env,
            stdout=terminal,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while "Login:" not in output.read_text(errors="replace").split("Serving http", 1)[-1]:
                assert process.poll() is None, output.read_text(errors="replace")
                assert time.monotonic() < deadline, "make run did not start within 5 minutes"
                time.sleep(1)
            time.sleep(RUN_SECONDS)
            assert process.poll() is None, output.read_text(errors="replace")
            on_screen = output.read_text(errors="replace").splitlines()[-SCREEN:]
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    log = output.read_text(errors="replace")
    password = re.search(r"password: (\S+)", (checkout / "var" / "admin-credentials.txt").read_text())
    assert password is not None
    screen = "\n".join(on_screen)
    assert f"Admin:    http://127.0.0.1:{port}/admin/" in screen, screen
    assert f"Login:    admin / {password.group(1)}" in screen, screen
    assert "Content-Type:" not in log, "an email was printed in full"
    mailbox = sorted((checkout / "var" / "mail").glob("*.eml"))
    assert log.count("saved to the local mailbox") <= len(mailbox)
    links: set[str] = set()
    for path in mailbox:
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        links.update(re.findall(r"https?://[^/\s]+/(?:portal|admin)/", text))
    # Every link in every email opens this server, whatever its port (not the default 8000).
    assert links <= {f"http://127.0.0.1:{port}/portal/", f"http://127.0.0.1:{port}/admin/"}, links
    print(
        f"\nmake run: {len(log.splitlines())} lines in all, {len(mailbox)} emails in the mailbox; on screen:"
    )
    print(screen)
