"""Import and export of accounts. Keyword-only; the import writes all or nothing, and both are audited."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any, BinaryIO

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from customers.accounts_csv.columns import COLUMN_NAMES, escape_cell
from customers.accounts_csv.reader import CsvSource, UnreadableFile
from customers.accounts_csv.selectors import account_export_rows
from customers.accounts_csv.staging import AccountStage
from customers.accounts_csv.validation import RowError, RowValidator, read_header
from customers.actors import Actor
from customers.models import Customer
from customers.money import to_major_units
from customers.services import audit_record

__all__ = ["ImportReport", "UnreadableFile", "accounts_export_stream", "accounts_import"]

DEFAULT_BATCH_SIZE = 5000
Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    """What an import found and did. ``errors`` holds the first ``max_errors``; ``error_count`` all of them."""

    file_name: str = ""
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    delimiter: str = ","
    written: bool = False
    seconds: float = 0.0
    bytes_read: int = 0
    sha256: str = ""
    run_id: str = ""

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def more_errors(self) -> int:
        return self.error_count - len(self.errors)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": [e.as_dict() for e in self.errors]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportReport:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["errors"] = [RowError(**e) for e in data.get("errors", [])]
        return cls(**values)


class _ErrorLog:
    """Counts every error, keeps the first ``limit``, and tells how many rows had at least one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: list[RowError] = []
        self.count = 0

    def extend(self, errors: list[RowError]) -> None:
        self.count += len(errors)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept.extend(errors[:room])


def accounts_import(
    *,
    source: BinaryIO,
    actor: Actor,
    dry_run: bool = False,
    file_name: str = "",
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_errors: int = 100,
    progress: Progress | None = None,
    expected_sha256: str = "",
    using: str = "default",
) -> ImportReport:
    """Validate every row of an account CSV, then upsert them all on ``external_id``, or write nothing.

    The file is streamed: validated rows go to a temporary staging table, and the upsert runs set-based from
    there. Any invalid row (or a duplicate key) means nothing is written. Unchanged accounts are not touched:
    no write, no ``updated_at`` change, no audit row. ``dry_run`` stops after the counts.

    Raises :class:`UnreadableFile` when the bytes are not CSV text (or, with ``expected_sha256``, not the
    file that was expected); nothing is written then either.
    """
    started = time.perf_counter()
    report = ImportReport(file_name=file_name, dry_run=dry_run, run_id=uuid.uuid4().hex)
    errors = _ErrorLog(max_errors)
    csv_source = CsvSource(source)
    records = csv_source.records()
    header = next(records, None)
    if header is None:
        errors.extend([RowError(1, "", "The file is empty: its first line must be the header row.")])
        return _finish(report, errors, csv_source, started)
    layout = read_header(*header)
    report.ignored_columns = layout.ignored
    report.delimiter = csv_source.delimiter
    if layout.errors:
        errors.extend(layout.errors)
        return _finish(report, errors, csv_source, started)

    validator = RowValidator(layout)
    stage = AccountStage(present=layout.present, using=using)
    stage.create()
    try:
        with stage.writer() as write:
            batch: list[tuple[Any, ...]] = []
            for line, cells in records:
                row, row_errors = validator.validate(line, cells)
                batch.append(row)
                if row_errors:
                    errors.extend(row_errors)
                if len(batch) >= batch_size:
                    write(batch)
                    report.rows += len(batch)
                    batch = []
                    if progress is not None:
                        progress(report.rows, csv_source.bytes_read)
            if batch:
                write(batch)
                report.rows += len(batch)
        if progress is not None:
            progress(report.rows, csv_source.bytes_read)
        if expected_sha256 and csv_source.sha256 != expected_sha256:
            raise UnreadableFile("The stored file is not the one that was previewed; upload it again.")

        duplicates, duplicate_errors = stage.duplicate_errors(limit=max_errors)
        if duplicates:
            errors.count += duplicates
            errors.kept = sorted([*errors.kept, *duplicate_errors], key=lambda e: e.line)[:max_errors]
        report.invalid = stage.invalid_rows()

        if errors.count or dry_run:
            counts = stage.plan()
        else:
            with transaction.atomic(using=using):
                stage.lock()
                counts = stage.plan()
                now = timezone.now()
                if counts.created or counts.updated:
                    # Audited once for the whole import; changed accounts get their own rows too (see
                    # AccountStage.apply). New accounts carry this event's time as their created_at.
                    event = audit_record(
                        actor=actor,
                        action="customers.imported",
                        reason="CSV import",
                        details={
                            "import": report.run_id,
                            "file": file_name,
                            "sha256": csv_source.sha256,
                            "rows": report.rows,
                            "created": counts.created,
                            "updated": counts.updated,
                            "unchanged": counts.unchanged,
                        },
                    )
                    now = event.occurred_at
                stage.apply(counts=counts, now=now, actor=actor, run_id=report.run_id, file_name=file_name)
                report.written = True
        report.created, report.updated, report.unchanged = counts.created, counts.updated, counts.unchanged
    finally:
        stage.drop()
    return _finish(report, errors, csv_source, started)


def _finish(report: ImportReport, errors: _ErrorLog, source: CsvSource, started: float) -> ImportReport:
    report.errors = errors.kept
    report.error_count = errors.count
    report.bytes_read = source.bytes_read
    report.sha256 = source.sha256
    report.seconds = time.perf_counter() - started
    return report


# --- Export -------------------------------------------------------------------------------------------------

EXPORT_FLUSH_CHARS = 1 << 16
UTF8_BOM = "\ufeff"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return escape_cell(value)
    return str(value)


def accounts_export_stream(
    *,
    queryset: QuerySet[Customer],
    actor: Actor,
    filters: dict[str, Any],
    bom: bool = False,
) -> Iterator[str]:
    """The accounts of ``queryset`` as CSV text, in chunks, with spreadsheet formulae escaped.

    One audit row records who exported, with which filters and how many rows, once the stream ends. A
    stream closed early (a dropped download) is recorded too, as incomplete.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write(UTF8_BOM)
    writer.writerow(COLUMN_NAMES)
    rows = 0
    complete = False
    try:
        for values in account_export_rows(queryset=queryset):
            *head, balance, oldest_due = values
            writer.writerow(
                [
                    *map(_cell, head),
                    str(to_major_units(balance, values[5])),
                    oldest_due.astimezone(UTC).date().isoformat() if oldest_due else "",
                ]
            )
            rows += 1
            if buffer.tell() >= EXPORT_FLUSH_CHARS:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
        complete = True
    finally:
        audit_record(
            actor=actor,
            action="customers.exported",
            reason="CSV export",
            details={"filters": filters, "rows": rows, "complete": complete},
        )
