"""``python manage.py export_accounts FILE [--filter KEY=VALUE ...] [--bom]``: accounts out to a CSV file.

The file is written to a new temporary file next to its final name and renamed when complete, so a failed
export never leaves a truncated file behind. FILE must be a regular file or not exist yet: a directory, a
symbolic link or a device (``/dev/full``) is refused and left as it is. ``-`` writes to standard output.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from datetime import date
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from customers.accounts_csv.services import AccountExport, accounts_export_stream
from customers.management.commands.import_accounts import command_actor
from customers.models import Customer

# --filter KEY=VALUE: the key, the lookup it applies, and how the value is read. A key given twice
# matches either value.
FILTERS: dict[str, tuple[str, Any]] = {
    "external_id": ("external_id", str),
    "segment": ("segment", str),
    "currency": ("currency", str),
    "locale": ("locale", str),
    "time_zone": ("time_zone", str),
    "entitlement_state": ("entitlement_state", str),
    "created_from": ("created_at__date__gte", date.fromisoformat),
    "created_before": ("created_at__date__lt", date.fromisoformat),
}


def parse_filters(items: list[str]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``["segment=smb", "segment=enterprise"]`` -> the filters as given, and ORM lookups."""
    given: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in FILTERS:
            raise CommandError(
                f"--filter {item!r}: use KEY=VALUE with KEY one of {', '.join(FILTERS)}.", returncode=2
            )
        given.setdefault(key, []).append(value.strip())
    lookups: dict[str, Any] = {}
    for key, values in given.items():
        lookup, parse = FILTERS[key]
        try:
            parsed = [parse(v) for v in values]
        except ValueError as error:
            raise CommandError(f"--filter {key}: {error} (dates are YYYY-MM-DD).", returncode=2) from error
        if len(parsed) == 1:
            lookups[lookup] = parsed[0]
        else:
            lookups[f"{lookup}__in"] = parsed
    return given, lookups


def check_target(file: str) -> int | None:
    """The permission bits of ``file`` when it is a regular file, None when it does not exist yet.

    Raises :class:`CommandError` (exit code 2) for anything else, which is never written or replaced.
    """
    try:
        found = os.lstat(file)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CommandError(f"{file}: cannot use it ({error.strerror}).", returncode=2) from error
    if stat.S_ISREG(found.st_mode):
        return stat.S_IMODE(found.st_mode)
    kind = (
        "a directory"
        if stat.S_ISDIR(found.st_mode)
        else "a symbolic link"
        if stat.S_ISLNK(found.st_mode)
        else "a device, pipe or socket"
    )
    raise CommandError(
        f"{file} is {kind}, not a regular file: nothing was written. Give the path of a new or regular "
        "file (a link is not followed), or - for standard output.",
        returncode=2,
    )


class Command(BaseCommand):
    help = (
        "Export customer accounts as CSV (the import format), with spreadsheet formulae escaped. "
        f"Filters: --filter KEY=VALUE with KEY one of {', '.join(FILTERS)}; repeat a key for either value."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Where to write, or - for standard output.")
        parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", dest="filters")
        parser.add_argument("--bom", action="store_true", help="Start with a UTF-8 byte order mark (Excel).")

    def handle(self, *args: Any, file: str, filters: list[str], bom: bool, **options: Any) -> None:
        given, lookups = parse_filters(filters)
        existing_mode = None if file == "-" else check_target(file)
        queryset: QuerySet[Customer] = Customer.objects.filter(**lookups)
        started = time.perf_counter()
        stream = accounts_export_stream(
            queryset=queryset, actor=command_actor("export_accounts"), filters=given, bom=bom
        )
        if file == "-":
            self._write(stream, getattr(self.stdout._out, "buffer", None))
        else:
            self._write_file(stream, file, existing_mode)
        seconds = time.perf_counter() - started
        rate = stream.rows / seconds if seconds else 0
        self.stderr.write(f"Exported {stream.rows:,} accounts in {seconds:.1f} s ({rate:,.0f} rows/s).")

    def _write_file(self, stream: AccountExport, file: str, existing_mode: int | None) -> None:
        """A temporary file created next to ``file`` (``O_EXCL``: never an existing path, never through a
        link), renamed over it when complete. A replaced file keeps its permissions; a new one is 0600."""
        directory = os.path.dirname(os.path.abspath(file))
        try:
            descriptor, partial = tempfile.mkstemp(
                dir=directory, prefix=f".{os.path.basename(file)}.", suffix=".part"
            )
        except OSError as error:
            raise CommandError(f"{file}: cannot write it ({error.strerror}).") from error
        try:
            with os.fdopen(descriptor, "wb") as out:
                self._write(stream, out)
                if existing_mode is not None:
                    os.fchmod(out.fileno(), existing_mode)
            check_target(file)  # still a regular file or nothing: it may have changed meanwhile
            os.replace(partial, file)
        except OSError as error:
            raise CommandError(f"{file}: cannot write it ({error.strerror}).") from error
        finally:
            if os.path.lexists(partial):
                os.remove(partial)

    def _write(self, stream: AccountExport, out: BinaryIO | None) -> None:
        for chunk in stream:
            if out is None:  # a text stream, as in tests
                self.stdout.write(chunk.decode(), ending="")
            else:
                out.write(chunk)
        if out is not None:
            out.flush()
