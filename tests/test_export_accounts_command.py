"""manage.py export_accounts: a streamed file, filters, standard output, an audit row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from customers.models import AuditEvent
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_writes_the_file_and_audits_it(tmp_path: Path) -> None:
    CustomerFactory(external_id="b", name="=SUM(A1)")
    CustomerFactory(external_id="a")
    target = tmp_path / "out.csv"
    err = io.StringIO()
    call_command("export_accounts", str(target), stderr=err)
    rows = list(csv.DictReader(target.open(newline="")))
    assert [r["external_id"] for r in rows] == ["a", "b"]
    assert rows[1]["name"] == "'=SUM(A1)"
    assert "Exported 2 accounts" in err.getvalue()
    assert not (tmp_path / "out.csv.part").exists()
    event = AuditEvent.objects.get(action="customers.exported")
    assert event.details["rows"] == 2
    assert event.actor_label.startswith("export_accounts (")


def test_filters_narrow_the_export_and_are_recorded(tmp_path: Path) -> None:
    CustomerFactory(external_id="e1", currency="EUR", segment="smb")
    CustomerFactory(external_id="e2", currency="EUR", segment="enterprise")
    CustomerFactory(external_id="u1", currency="USD", segment="smb")
    target = tmp_path / "out.csv"
    call_command(
        "export_accounts",
        str(target),
        "--filter",
        "currency=EUR",
        "--filter",
        "segment=smb",
        "--filter",
        "segment=enterprise",
        stderr=io.StringIO(),
    )
    assert [r["external_id"] for r in csv.DictReader(target.open(newline=""))] == ["e1", "e2"]
    event = AuditEvent.objects.get(action="customers.exported")
    assert event.details["filters"] == {"currency": ["EUR"], "segment": ["smb", "enterprise"]}


def test_dash_writes_to_standard_output() -> None:
    CustomerFactory(external_id="acct-1")
    out = io.StringIO()
    call_command("export_accounts", "-", stdout=out, stderr=io.StringIO())
    assert out.getvalue().startswith("external_id,name,")
    assert "acct-1," in out.getvalue()


def test_unknown_filter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="KEY one of"):
        call_command("export_accounts", str(tmp_path / "x.csv"), "--filter", "password=x")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("export_accounts", str(tmp_path / "x.csv"), "--filter", "created_from=yesterday")
    assert not (tmp_path / "x.csv").exists()


# --- What FILE may be ----------------------------------------------------------------------------------------


def _refused(target: Path, kind: str) -> None:
    with pytest.raises(CommandError, match=f"is {kind}, not a regular file") as raised:
        call_command("export_accounts", str(target), stderr=io.StringIO())
    assert raised.value.returncode == 2
    assert not AuditEvent.objects.filter(action="customers.exported").exists()


def test_a_device_is_refused_and_left_alone() -> None:
    CustomerFactory()
    before = Path("/dev/full").lstat()
    _refused(Path("/dev/full"), "a device, pipe or socket")
    after = Path("/dev/full").lstat()
    assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev, before.st_ino)


def test_a_symbolic_link_is_refused_and_neither_followed_nor_replaced(tmp_path: Path) -> None:
    CustomerFactory()
    real = tmp_path / "real.csv"
    real.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    _refused(link, "a symbolic link")
    assert link.is_symlink() and real.read_text() == "keep me"
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "missing.csv")
    _refused(dangling, "a symbolic link")
    assert not (tmp_path / "missing.csv").exists()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    CustomerFactory()
    _refused(tmp_path, "a directory")
    assert list(tmp_path.iterdir()) == []


def test_a_regular_file_is_replaced_whole_keeping_its_permissions(tmp_path: Path) -> None:
    CustomerFactory(external_id="acct-1")
    target = tmp_path / "out.csv"
    target.write_text("old content")
    target.chmod(0o640)
    call_command("export_accounts", str(target), stderr=io.StringIO())
    assert target.read_text().startswith("external_id,")
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left behind


def test_a_new_file_is_private_to_its_owner(tmp_path: Path) -> None:
    CustomerFactory()
    target = tmp_path / "new.csv"
    call_command("export_accounts", str(target), stderr=io.StringIO())
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot write it"):
        call_command("export_accounts", str(tmp_path / "nope" / "out.csv"), stderr=io.StringIO())
