"""Import and export of accounts. Keyword-only; the import writes all or nothing, and both are audited."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from customers.accounts_csv.columns import COLUMN_NAMES, escape_cell
from customers.accounts_csv.reader import CsvSource, UnreadableFile
from customers.accounts_csv.selectors import account_export_copy_sql, account_export_rows
from customers.accounts_csv.staging import AccountStage
from customers.accounts_csv.validation import RowError, RowValidator, read_header
from customers.actors import Actor
from customers.models import AccountImport, AccountImportStatus, Customer
from customers.money import to_major_units
from customers.services import audit_record

__all__ = [
    "ImportNotPending",
    "ImportReport",
    "UnreadableFile",
    "account_import_confirm",
    "account_import_discard",
    "account_import_error_report",
    "account_import_preview",
    "account_imports_purge_expired",
    "account_tables_analyze",
    "accounts_export_stream",
    "accounts_import",
]

DEFAULT_BATCH_SIZE = 5000
# Imports that create or change at least this many accounts refresh the planner statistics afterwards.
ANALYZE_AFTER_ROWS = 10_000
logger = logging.getLogger(__name__)
# How many errors the admin keeps with a preview, and how many its downloadable error report lists.
PREVIEW_ERRORS = 1000
ERROR_REPORT_ERRORS = 100_000
# progress(rows read so far, bytes read so far, phase): phase is "reading" while rows stream in, then
# "writing" while the checks across rows and the upsert run.
Progress = Callable[[int, int, str], None]


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
    """Counts every error and keeps the first ``limit`` of them."""

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
        raise UnreadableFile("the file is empty: its first line must be the header row.")
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
                        progress(report.rows, csv_source.bytes_read, "reading")
            if batch:
                write(batch)
                report.rows += len(batch)
        if progress is not None:
            progress(report.rows, csv_source.bytes_read, "writing")
        if expected_sha256 and csv_source.sha256 != expected_sha256:
            raise UnreadableFile("The stored file is not the one that was previewed; upload it again.")

        for found, found_errors in (
            stage.duplicate_errors(limit=max_errors),
            stage.erased_errors(limit=max_errors),
        ):
            if found:
                errors.count += found
                errors.kept = sorted([*errors.kept, *found_errors], key=lambda e: e.line)[:max_errors]
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
            if counts.created + counts.updated >= ANALYZE_AFTER_ROWS:
                transaction.on_commit(_enqueue_statistics_refresh, using=using)
        report.created, report.updated, report.unchanged = counts.created, counts.updated, counts.unchanged
    finally:
        stage.drop()
    return _finish(report, errors, csv_source, started)


def _enqueue_statistics_refresh() -> None:
    try:
        async_task("customers.tasks.refresh_account_statistics", task_name="refresh account statistics")
    except Exception:  # housekeeping only: the import is committed, autovacuum gets there in time
        logger.warning("Could not enqueue the statistics refresh after a large import", exc_info=True)


def account_tables_analyze(*, using: str = "default") -> None:
    """Fresh PostgreSQL planner statistics for the tables an import fills.

    Right after a large load, a query planned before autovacuum's next pass (an export, a changelist) may
    take the tables for empty and pick a plan a hundred times slower. Large imports ask for this as a task
    rather than running it inline: it costs a tenth of the import, and nobody needs to wait for it.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE customers_customer, customers_contact, customers_paymentmethod")


def _finish(report: ImportReport, errors: _ErrorLog, source: CsvSource, started: float) -> ImportReport:
    report.errors = errors.kept
    report.error_count = errors.count
    report.bytes_read = source.bytes_read
    report.sha256 = source.sha256
    report.seconds = time.perf_counter() - started
    return report


# --- Export -------------------------------------------------------------------------------------------------

EXPORT_FLUSH_BYTES = 1 << 16
UTF8_BOM = "\ufeff"


class AccountExport:
    """The CSV bytes of an export, in chunks; ``rows`` counts the accounts written.

    On PostgreSQL the database formats the rows itself (``COPY … TO STDOUT``, escaping included), which is as
    fast as an export can be; elsewhere Python formats them. Both give the same bytes.
    """

    def __init__(self, *, queryset: QuerySet[Customer], actor: Actor, filters: dict[str, Any], bom: bool):
        self.queryset, self.actor, self.filters, self.bom = queryset, actor, filters, bom
        self.rows = 0

    def header(self) -> bytes:
        return ((UTF8_BOM if self.bom else "") + ",".join(COLUMN_NAMES) + "\n").encode()

    def __iter__(self) -> Iterator[bytes]:
        complete = False
        try:
            if connections[self.queryset.db].vendor == "postgresql":
                yield from self._copy_chunks()
            else:
                yield from self._python_chunks()
            complete = True
        finally:
            audit_record(
                actor=self.actor,
                action="customers.exported",
                reason="CSV export",
                details={"filters": self.filters, "rows": self.rows, "complete": complete},
            )

    def _copy_chunks(self) -> Iterator[bytes]:
        connection = connections[self.queryset.db]
        query = account_export_copy_sql(queryset=self.queryset)
        parts, size = [self.header()], 0
        # Inside a transaction, an abandoned COPY (the client went away) aborts it; a savepoint keeps the
        # transaction usable for the audit row. In autocommit only the COPY statement itself fails.
        savepoint = connection.savepoint() if connection.in_atomic_block else None
        finished = False
        with connection.cursor() as cursor:
            try:
                # JIT compiling this query costs more than running it.
                cursor.execute("SET LOCAL jit = off" if savepoint else "SET jit = off")
                with cursor.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
                    for data in copy:
                        parts.append(bytes(data))
                        size += len(data)
                        if size >= EXPORT_FLUSH_BYTES:
                            yield b"".join(parts)
                            parts, size = [], 0
                self.rows = cursor.cursor.rowcount
                finished = True
            finally:
                if savepoint is not None:
                    if finished:
                        connection.savepoint_commit(savepoint)
                    else:
                        connection.savepoint_rollback(savepoint)
                else:
                    cursor.execute("RESET jit")
        yield b"".join(parts)

    def _python_chunks(self) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        yield self.header()
        escape = escape_cell
        for values in account_export_rows(queryset=self.queryset):
            # See account_export_queryset for the order.
            *text, month, year, funding, country, balance, oldest_due = values
            writer.writerow(
                [
                    *(escape(v) if v else "" for v in text),
                    month,
                    year,
                    escape(funding) if funding else "",
                    escape(country) if country else "",
                    str(to_major_units(balance, values[5])),
                    oldest_due.astimezone(UTC).date().isoformat() if oldest_due else "",
                ]
            )
            self.rows += 1
            if buffer.tell() >= EXPORT_FLUSH_BYTES:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()


def accounts_export_stream(
    *, queryset: QuerySet[Customer], actor: Actor, filters: dict[str, Any], bom: bool = False
) -> AccountExport:
    """The accounts of ``queryset`` as CSV (UTF-8 bytes), in chunks, with spreadsheet formulae escaped.

    Iterate it once. One audit row records who exported, with which filters and how many rows, when the
    stream ends; a stream closed early (a dropped download) is recorded too, as incomplete.
    """
    return AccountExport(queryset=queryset, actor=actor, filters=filters, bom=bom)


# --- Admin imports: preview now, confirm later (maybe on another server) -------------------------------------


class ImportNotPending(Exception):
    """The import was already confirmed, discarded or expired, or belongs to someone else."""


def _digest(upload: File) -> tuple[str, int]:
    sha256, size = hashlib.sha256(), 0
    for chunk in upload.chunks():
        sha256.update(chunk)
        size += len(chunk)
    return sha256.hexdigest(), size


def account_import_preview(*, upload: File, user: AbstractBaseUser, actor: Actor) -> AccountImport:
    """Store an uploaded file and dry-run it: the counts and the first errors are saved with it.

    The file goes to the account-import storage (see ``account_import_storage``), so the confirmation can
    run on any server. Raises :class:`UnreadableFile` (and keeps nothing) when the file is not CSV text.
    """
    account_imports_purge_expired()
    digest, size = _digest(upload)
    record = AccountImport(
        id=uuid.uuid4(),
        original_name=(upload.name or "accounts.csv")[-255:],
        size_bytes=size,
        sha256=digest,
        created_by=user,
        expires_at=timezone.now() + AccountImport.PENDING_FOR,
    )
    record.file.save(f"{record.pk}.csv", upload, save=False)
    try:
        with record.file.open("rb") as stored:
            report = accounts_import(
                source=stored,
                actor=actor,
                dry_run=True,
                file_name=record.original_name,
                max_errors=PREVIEW_ERRORS,
                expected_sha256=digest,
            )
    except BaseException:
        record.file.delete(save=False)
        raise
    record.report = report.as_dict()
    record.save()
    return record


def _claim(account_import_id: uuid.UUID, user: AbstractBaseUser, status: str) -> AccountImport:
    """Move a pending import of ``user`` to ``status``; only one request can ever do it."""
    claimed = AccountImport.objects.filter(
        pk=account_import_id,
        created_by=user,
        status=AccountImportStatus.PREVIEWED,
        expires_at__gt=timezone.now(),
    ).update(status=status)
    if not claimed:
        raise ImportNotPending("This import is no longer waiting for confirmation.")
    return AccountImport.objects.get(pk=account_import_id)


def _close(record: AccountImport, status: str, report: dict[str, Any] | None = None) -> None:
    record.file.delete(save=False)
    record.status = status
    record.finished_at = timezone.now()
    if report is not None:
        record.report = report
    record.save(update_fields=["file", "status", "finished_at", "report"])


def account_import_confirm(
    *, account_import_id: uuid.UUID, user: AbstractBaseUser, actor: Actor
) -> tuple[AccountImport, ImportReport]:
    """Import a previewed file for real. The file is validated again (all or nothing) and then deleted.

    Raises :class:`ImportNotPending` for an import that is not the user's, not pending, or expired.
    """
    record = _claim(account_import_id, user, AccountImportStatus.IMPORTING)
    try:
        with record.file.open("rb") as stored:
            report = accounts_import(
                source=stored,
                actor=actor,
                file_name=record.original_name,
                max_errors=PREVIEW_ERRORS,
                expected_sha256=record.sha256,
            )
    except BaseException as error:
        _close(record, AccountImportStatus.FAILED, {**record.report, "failure": str(error)})
        raise
    status = AccountImportStatus.IMPORTED if report.written else AccountImportStatus.FAILED
    _close(record, status, report.as_dict())
    return record, report


def account_import_discard(*, account_import_id: uuid.UUID, user: AbstractBaseUser) -> AccountImport:
    record = _claim(account_import_id, user, AccountImportStatus.DISCARDED)
    _close(record, AccountImportStatus.DISCARDED)
    return record


def account_imports_purge_expired(*, now: datetime | None = None) -> int:
    """Delete the files of imports past their expiry; pending ones become expired. Returns how many."""
    now = now or timezone.now()
    purged = 0
    for record in AccountImport.objects.filter(expires_at__lte=now).exclude(file=""):
        pending = record.status in (AccountImportStatus.PREVIEWED, AccountImportStatus.IMPORTING)
        _close(record, AccountImportStatus.EXPIRED if pending else record.status)
        purged += 1
    return purged


def account_import_error_report(*, account_import: AccountImport) -> Iterator[str]:
    """Every error of a stored file (up to ``ERROR_REPORT_ERRORS``) as CSV text: line, column, value, reason.

    Values come from the uploaded file, so they are escaped like an export: the report is safe to open.
    """
    with account_import.file.open("rb") as stored:
        report = accounts_import(
            source=stored,
            actor=Actor.system("error report"),
            dry_run=True,
            file_name=account_import.original_name,
            max_errors=ERROR_REPORT_ERRORS,
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["line", "column", "value", "reason"])
    yield buffer.getvalue()
    for start in range(0, len(report.errors), 1000):
        buffer.seek(0)
        buffer.truncate()
        for error in report.errors[start : start + 1000]:
            writer.writerow([error.line, error.column, escape_cell(error.value), escape_cell(error.message)])
        yield buffer.getvalue()
