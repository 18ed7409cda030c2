"""Settings from the environment: production is locked down, local use needs no configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.secrets import require_secret_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Production settings from this environment only: nothing of the suite's own (database, Redis run).
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "Q_CLUSTER"))
    }
    clean_env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_READ_DOT_ENV": "0", **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT, env=clean_env, capture_output=True, text=True
    )


def test_check_deploy_is_clean_under_production_settings(tmp_path: Path) -> None:
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 20 + "a-long-random-production-secret-key-value-1234567890",
        DJANGO_ALLOWED_HOSTS="billing.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PAYMENT_GATEWAY="stripe",
        STRIPE_SECRET_KEY="sk_live_not_a_real_key_0123456789",
        STRIPE_WEBHOOK_SECRET="whsec_not_a_real_secret",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_refuses_the_simulated_gateway_in_production(tmp_path: Path) -> None:
    result = _manage(
        "check",
        "--deploy",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 20 + "a-long-random-production-secret-key-value-1234567890",
        DJANGO_ALLOWED_HOSTS="billing.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PAYMENT_GATEWAY="simulated",
    )
    assert result.returncode != 0
    assert "dunning.E003" in result.stderr
    # A plain `check` (the test suite, `make run` in debug) does not report it: it is a deployment concern.
    plain = _manage(
        "check",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 70,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PAYMENT_GATEWAY="simulated",
    )
    assert plain.returncode == 0, plain.stderr
    assert "dunning.E003" not in plain.stdout + plain.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _manage("check", DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off" in result.stderr


def test_debug_mode_generates_a_secret_key_once_and_keeps_it(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "secret_key"
    first = require_secret_key("", debug=True, local_path=key_file)
    second = require_secret_key("", debug=True, local_path=key_file)
    assert first == second
    assert len(first) >= 50
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_an_explicit_secret_key_wins() -> None:
    assert require_secret_key("explicit", debug=False, local_path=Path("/nonexistent")) == "explicit"
    with pytest.raises(ImproperlyConfigured):
        require_secret_key("", debug=False, local_path=Path("/nonexistent"))


def test_redis_url_switches_the_task_broker_to_redis(tmp_path: Path) -> None:
    code = "from django.conf import settings; print(settings.Q_CLUSTER.get('redis'), settings.Q_CLUSTER.get('orm'))"
    with_redis = _manage(
        "shell", "-v", "0", "-c", code, DJANGO_DEBUG="true", REDIS_URL="redis://127.0.0.1:6379/3"
    )
    without = _manage("shell", "-v", "0", "-c", code, DJANGO_DEBUG="true")
    assert with_redis.stdout.split() == ["redis://127.0.0.1:6379/3", "None"], with_redis.stderr
    assert without.stdout.split() == ["None", "default"], without.stderr
