from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_bootstrap_creates_a_superuser_once_and_prints_its_login(tmp_path: Path) -> None:
    with override_settings(DEBUG=True, LOCAL_STATE_DIR=tmp_path):
        out = StringIO()
        call_command("bootstrap_local", "--no-demo", stdout=out)
        credentials = (tmp_path / "admin-credentials.txt").read_text()
        password = credentials.split("password: ")[1].strip()
        assert f"Password: {password}" in out.getvalue()
        user = get_user_model().objects.get(username="admin")
        assert user.is_superuser and user.check_password(password)
        assert oct((tmp_path / "admin-credentials.txt").stat().st_mode & 0o777) == "0o600"

        call_command("bootstrap_local", "--no-demo", stdout=StringIO())
        assert (tmp_path / "admin-credentials.txt").read_text() == credentials
        assert get_user_model().objects.count() == 1


def test_bootstrap_refuses_to_run_in_production() -> None:
    with override_settings(DEBUG=False), pytest.raises(CommandError, match="for local use"):
        call_command("bootstrap_local", stdout=StringIO())
