"""``python manage.py export_accounts FILE [--filter KEY=VALUE ...] [--bom]``: accounts out to a CSV file.

The file is written next to its final name and renamed when complete, so a failed export never leaves a
truncated file behind. ``-`` writes to standard output.
"""

from __future__ import annotations

import os
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
        queryset: QuerySet[Customer] = Customer.objects.filter(**lookups)
        started = time.perf_counter()
        stream = accounts_export_stream(
            queryset=queryset, actor=command_actor("export_accounts"), filters=given, bom=bom
        )
        if file == "-":
            self._write(stream, getattr(self.stdout._out, "buffer", None))
        else:
            partial = f"{file}.part"
            try:
                with open(partial, "wb") as out:
                    self._write(stream, out)
                os.replace(partial, file)
            except OSError as error:
                raise CommandError(f"{file}: cannot write it ({error.strerror}).") from error
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
        seconds = time.perf_counter() - started
        rate = stream.rows / seconds if seconds else 0
        self.stderr.write(f"Exported {stream.rows:,} accounts in {seconds:.1f} s ({rate:,.0f} rows/s).")

    def _write(self, stream: AccountExport, out: BinaryIO | None) -> None:
        for chunk in stream:
            if out is None:  # a text stream, as in tests
                self.stdout.write(chunk.decode(), ending="")
            else:
                out.write(chunk)
        if out is not None:
            out.flush()
