"""``python manage.py import_accounts FILE [--dry-run] [--batch-size N]``: load accounts from a CSV file.

Exit codes: 0 imported (or, with --dry-run, valid); 1 invalid rows, nothing written; 2 unreadable file.
"""

from __future__ import annotations

import getpass
import os
import sys
import time
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.accounts_csv.services import (
    DEFAULT_BATCH_SIZE,
    ImportReport,
    UnreadableFile,
    accounts_import,
)
from customers.actors import Actor

SHOWN_ERRORS = 100
PROGRESS_EVERY_SECONDS = 0.25


def command_actor(command: str) -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = "unknown"
    return Actor.system(f"{command} ({user})")


class Command(BaseCommand):
    help = (
        "Import customer accounts from a CSV file (see README, 'CSV import and export'). Every row is "
        "validated first; one invalid row means nothing is written. Exit codes: 0 success, 1 invalid rows "
        "(nothing written), 2 unreadable file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The CSV file, or - for standard input.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and count; write nothing.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows sent to the database at a time (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, file: str, dry_run: bool, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.", returncode=2)
        source, total_bytes = self._open(file)
        progress = _Progress(self.stderr, total_bytes, dry_run) if self.stderr.isatty() else None
        try:
            report = accounts_import(
                source=source,
                actor=command_actor("import_accounts"),
                dry_run=dry_run,
                file_name=os.path.basename(file) if file != "-" else "stdin",
                batch_size=batch_size,
                max_errors=SHOWN_ERRORS,
                progress=progress,
            )
        except UnreadableFile as error:
            raise CommandError(f"{file}: {error}", returncode=2) from error
        finally:
            if progress is not None:
                progress.clear()
            if source is not sys.stdin.buffer:
                source.close()
        self._summarise(report)

    def _open(self, file: str) -> tuple[BinaryIO, int]:
        if file == "-":
            return sys.stdin.buffer, 0
        try:
            return open(file, "rb"), os.path.getsize(file)  # noqa: SIM115 (closed in handle)
        except OSError as error:
            raise CommandError(f"{file}: cannot read it ({error.strerror}).", returncode=2) from error

    def _summarise(self, report: ImportReport) -> None:
        if report.ignored_columns:
            self.stderr.write(f"Ignored unknown columns: {', '.join(report.ignored_columns)}.")
        counts = (
            f"{report.created:,} new, {report.updated:,} updated, {report.unchanged:,} unchanged, "
            f"{report.invalid:,} invalid"
        )
        timing = f"{report.rows:,} rows in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)"
        if not report.ok:
            self.stderr.write(f"{report.error_count:,} errors; the first {len(report.errors):,} by line:")
            for error in report.errors:
                where = f"line {error.line}" + (f", {error.column}" if error.column else "")
                value = f" (value: {error.value})" if error.value else ""
                self.stderr.write(f"  {where}: {error.message}{value}")
            if report.more_errors:
                self.stderr.write(f"  … and {report.more_errors:,} more.")
            self.stdout.write(f"{timing}: {counts}.")
            raise CommandError("Nothing was written: fix the rows above and run it again.", returncode=1)
        if report.dry_run:
            self.stdout.write(self.style.SUCCESS(f"Dry run, nothing written. {timing}: {counts}."))
        elif not (report.created or report.updated):
            self.stdout.write(
                self.style.SUCCESS(f"Nothing changed: every account is up to date. {timing}: {counts}.")
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported {timing}: {counts}."))


class _Progress:
    """One self-overwriting line on a terminal: rows, bytes and speed."""

    def __init__(self, out: Any, total_bytes: int, dry_run: bool) -> None:
        self.out = out
        self.dry_run = dry_run
        self.total = total_bytes
        self.started = time.monotonic()
        self.shown = 0.0

    def __call__(self, rows: int, bytes_read: int, phase: str) -> None:
        now = time.monotonic()
        if phase == "reading" and now - self.shown < PROGRESS_EVERY_SECONDS:
            return
        self.shown = now
        rate = rows / (now - self.started) if now > self.started else 0
        share = f" ({bytes_read / self.total:.0%} of the file)" if self.total else ""
        if phase == "reading":
            line = f"Validating: {rows:,} rows{share}, {rate:,.0f} rows/s"
        else:
            line = f"Validated {rows:,} rows; checking duplicates{'' if self.dry_run else ' and writing'}…"
        self.out.write(f"\r\033[K{line}", style_func=_plain, ending="")
        self.out.flush()

    def clear(self) -> None:
        self.out.write("\r\033[K", style_func=_plain, ending="")
        self.out.flush()


def _plain(text: str) -> str:
    """Progress is not an error: no red, although it goes to standard error."""
    return text
