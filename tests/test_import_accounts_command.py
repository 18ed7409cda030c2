"""manage.py import_accounts: exit codes, the first 100 errors with line numbers, a summary."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from customers.models import AuditEvent, Customer
from tests.factories import account_row, accounts_csv

pytestmark = pytest.mark.django_db


def call(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_accounts", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_imports_and_summarises(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(accounts_csv([account_row(1), account_row(2)]))
    out, _ = call(str(path))
    assert "Imported 2 rows" in out
    assert "2 new, 0 updated, 0 unchanged, 0 invalid" in out
    assert Customer.objects.count() == 2
    event = AuditEvent.objects.get(action="customers.imported")
    assert event.actor_label.startswith("import_accounts (")
    assert event.details["file"] == "accounts.csv"

    out, _ = call(str(path))
    assert out.startswith("Nothing changed: every account is up to date.")
    assert "0 new, 0 updated, 2 unchanged" in out


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_an_empty_file_exits_2_as_unreadable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(CommandError, match="the file is empty") as raised:
        call(str(path))
    assert raised.value.returncode == 2


def test_invalid_rows_exit_1_with_the_first_100_errors_by_line(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(
        accounts_csv([account_row(n, currency="EURO" if n % 2 else "EUR") for n in range(1, 301)])
    )
    with pytest.raises(CommandError) as raised:
        call(str(path))
    assert raised.value.returncode == 1
    assert "Nothing was written" in str(raised.value)
    assert not Customer.objects.exists()


def test_error_listing_names_line_column_reason_and_value(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    rows = [account_row(n, currency="EURO" if n % 2 else "EUR") for n in range(1, 301)]
    path.write_bytes(accounts_csv(rows))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_accounts", str(path), stdout=out, stderr=err)
    lines = err.getvalue().splitlines()
    assert lines[0] == "150 errors; the first 100 by line:"
    assert lines[1].startswith("  line 2, currency: 'EURO' is not an ISO 4217 currency code")
    assert lines[1].endswith("(value: EURO)")
    assert lines[100].startswith("  line 200, currency:")
    assert lines[101] == "  … and 50 more."
    assert "150 invalid" in out.getvalue()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(accounts_csv([account_row(1)]))
    out, _ = call(str(path), "--dry-run")
    assert "Dry run, nothing written" in out
    assert "1 new" in out
    assert not Customer.objects.exists()


def test_missing_or_unreadable_files_exit_2(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as raised:
        call(str(tmp_path / "missing.csv"))
    assert raised.value.returncode == 2
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("external_id,name,currency\r\nacct-1,Chlo\u00e9,EUR\r\n".encode("latin-1"))
    with pytest.raises(CommandError) as raised:
        call(str(latin))
    assert raised.value.returncode == 2
    assert "not UTF-8" in str(raised.value)


def test_batch_size_does_not_change_the_result(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(accounts_csv([account_row(n) for n in range(1, 12)]))
    out, _ = call(str(path), "--batch-size", "3")
    assert "11 new" in out
    assert Customer.objects.count() == 11


def test_exit_codes_from_a_real_process(tmp_path: Path) -> None:
    """The shell sees 0, 1 and 2 (CommandError's return code, not just an exception in-process)."""
    database = tmp_path / "db.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "PATH": "",
    }
    manage = [sys.executable, str(Path(__file__).resolve().parent.parent / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], env=env, check=True)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(accounts_csv([account_row(1)]))
    bad.write_bytes(accounts_csv([account_row(1, currency="XXX")]))
    codes = [
        subprocess.run([*manage, "import_accounts", str(f)], env=env, capture_output=True).returncode
        for f in (good, bad, tmp_path / "missing.csv")
    ]
    assert codes == [0, 1, 2]
    piped = subprocess.run(
        [*manage, "import_accounts", "-", "--dry-run"], env=env, input=good.read_bytes(), capture_output=True
    )
    assert piped.returncode == 0
    assert b"1 unchanged" in piped.stdout
