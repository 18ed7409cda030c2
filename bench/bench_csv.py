"""CSV import and export of accounts: 100,000 rows on PostgreSQL and SQLite, and a 1,000,000-row memory check.

Every import runs as its own ``manage.py import_accounts`` process, so its peak memory (``ru_maxrss`` from
``wait4``) is its own. Rates are the command's own figure (reading, validating and writing, from its summary
line); the note adds the process's wall time, which includes starting Python and Django. Baselines, measured
in the same run: the driver's ``COPY`` of the same accounts into ``customers_customer`` (PostgreSQL), a plain
``executemany`` in one transaction (SQLite) and ``COPY (the export query) TO STDOUT``.

``BENCH_CSV_BIG_ROWS`` sets the size of the memory check (default 1,000,000; 0 skips it).
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import Result, progress

ROWS = 100_000
BIG_ROWS = int(os.environ.get("BENCH_CSV_BIG_ROWS", "1000000"))
MANAGE = str(Path(__file__).resolve().parent.parent / "manage.py")
CUSTOMER_COLUMNS = [
    "external_id",
    "name",
    "email",
    "company",
    "segment",
    "currency",
    "locale",
    "time_zone",
    "country",
    "gateway_customer_id",
    "entitlement_state",
    "created_at",
    "updated_at",
]
MARKETS = [
    ("USD", "en-US", "America/New_York", "US"),
    ("EUR", "fr-FR", "Europe/Paris", "FR"),
    ("EUR", "de-DE", "Europe/Berlin", "DE"),
    ("GBP", "en-GB", "Europe/London", "GB"),
    ("JPY", "ja-JP", "Asia/Tokyo", "JP"),
    ("SEK", "sv-SE", "Europe/Stockholm", "SE"),
]
NAMES = ["Ada", "Bruno", "Chloé", "Dmitri", "Elena", "Farah", "Gustav", "Hana", "Inès", "Jonas", "Kenji"]
SURNAMES = ["Andersen", "Bauer", "Costa", "Dubois", "Eriksson", "García", "Hoffmann", "Ito", "Kowalski"]


def generate(path: Path, rows: int, baseline_path: Path | None = None) -> None:
    """An account file of ``rows`` accounts (and, for the COPY baseline, the same accounts as table rows)."""
    from customers.accounts_csv.columns import COLUMN_NAMES

    rng = random.Random(20261121)
    stamp = datetime.now(UTC).isoformat()
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMN_NAMES)
        base = csv.writer(baseline_path.open("w", newline="", encoding="utf-8")) if baseline_path else None
        for n in range(rows):
            currency, locale, time_zone, country = MARKETS[n % len(MARKETS)]
            first, last = NAMES[n % len(NAMES)], SURNAMES[(n // 7) % len(SURNAMES)]
            company = f"{last}, {first} & Co" if n % 10 == 0 else f"{last} {n % 5000}"
            email = f"{first.lower().replace('é', 'e').replace('è', 'e')}.{n}@example.com"
            customer = [
                f"acct-{n:07d}",
                f"{first} {last}",
                email,
                company,
                ("self_serve", "smb", "mid_market", "enterprise")[n % 4],
                currency,
                locale,
                time_zone,
                country,
            ]
            writer.writerow(
                [
                    *customer,
                    f"Accounts {last}",
                    f"billing.{n}@example.com",
                    "card",
                    ("visa", "mastercard", "amex")[n % 3],
                    f"{rng.randrange(10_000):04d}",
                    str(1 + n % 12),
                    str(2027 + n % 5),
                    ("credit", "debit", "prepaid")[n % 3],
                    country,
                    "",
                    "",
                ]
            )
            if base is not None:
                base.writerow([*customer, "", "active", stamp, stamp])


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run a process; return its wall time (s), its peak RSS (MB) and its output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{output}")
    return wall, usage.ru_maxrss / 1024, output


def import_rate(output: str) -> float:
    match = re.search(r"\(([\d,]+) rows/s\)", output)
    assert match, output
    return float(match.group(1).replace(",", ""))


def manage(*args: str) -> list[str]:
    return [sys.executable, MANAGE, *args]


def _truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE customers_auditevent, customers_accountimport, customers_invoice, customers_contact, "
            "customers_paymentmethod, customers_customer RESTART IDENTITY CASCADE"
        )


def _pg_copy_baseline(baseline_file: Path) -> float:
    """Rows/s of the driver's COPY of the same accounts into customers_customer (then emptied again)."""
    from django.db import connection

    _truncate()
    columns = ", ".join(CUSTOMER_COLUMNS)
    started = time.perf_counter()
    with (
        connection.cursor() as cursor,
        baseline_file.open("rb") as data,
        cursor.cursor.copy(
            f"COPY customers_customer ({columns}) FROM STDIN (FORMAT csv, FORCE_NOT_NULL (gateway_customer_id))"
        ) as copy,
    ):
        while chunk := data.read(1 << 16):
            copy.write(chunk)
    seconds = time.perf_counter() - started
    _truncate()
    return ROWS / seconds


def _add_open_invoices() -> int:
    """Every other account gets an open invoice, so the export computes real balances."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO customers_invoice (customer_id, number, amount_due_minor, amount_paid_minor, currency,
                status, due_at, lines, gateway, gateway_invoice_id, created_at, updated_at)
            SELECT id, 'BENCH-' || id, 4900 + id % 1000, 0, currency, 'open', now() - (id % 90) * interval '1 day',
                   '[]'::jsonb, '', '', now(), now()
            FROM customers_customer WHERE id % 2 = 0
            """
        )
        created = cursor.rowcount
        # As on a live site, where autovacuum has long analysed the invoices table.
        cursor.execute("ANALYZE customers_invoice")
        return created


def _pg_copy_to_baseline() -> float:
    """Rows/s of COPY (the export's own query) TO STDOUT, read by the driver."""
    from django.db import connection

    from customers.accounts_csv.selectors import account_export_queryset
    from customers.models import Customer

    sql, params = account_export_queryset(queryset=Customer.objects.all()).query.sql_with_params()
    with connection.cursor() as cursor:
        query = cursor.cursor.mogrify(sql, params)
        started = time.perf_counter()
        count = 0
        with cursor.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                count += bytes(chunk).count(b"\n")
        seconds = time.perf_counter() - started
    return (count - 1) / seconds


def _sqlite_executemany_baseline(baseline_file: Path, database: Path) -> float:
    connection = sqlite3.connect(database)
    connection.execute("DELETE FROM customers_customer")
    connection.commit()
    placeholders = ", ".join("?" * len(CUSTOMER_COLUMNS))
    started = time.perf_counter()
    with baseline_file.open(newline="", encoding="utf-8") as data, connection:
        connection.executemany(
            f"INSERT INTO customers_customer ({', '.join(CUSTOMER_COLUMNS)}) VALUES ({placeholders})",
            csv.reader(data),
        )
    seconds = time.perf_counter() - started
    connection.execute("DELETE FROM customers_customer")
    connection.commit()
    connection.close()
    return ROWS / seconds


def _admin(file: Path, env: dict[str, str]) -> tuple[float, float, dict]:
    wall, peak, output = run_measured([sys.executable, "-m", "bench.bench_csv", "admin", str(file)], env)
    line = next(line for line in output.splitlines() if line.startswith("ADMIN "))
    return wall, peak, json.loads(line.removeprefix("ADMIN "))


def admin_import(file: str) -> None:
    """Subprocess entry point: upload, preview and confirm ``file`` through the admin with the test client."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from customers.accounts_csv.services import ImportReport
    from customers.models import AccountImport

    users = get_user_model()
    user = users.objects.filter(username="bench-csv").first() or users.objects.create_superuser(
        "bench-csv", "bench@example.com", "bench-password"
    )
    client = Client()
    client.force_login(user)
    started = time.perf_counter()
    with open(file, "rb") as upload:
        response = client.post("/admin/customers/customer/import/", {"file": upload})
    assert response.status_code == 302, response.content[:2000]
    preview = client.get(response["Location"])
    assert preview.status_code == 200
    uploaded = time.perf_counter() - started
    record = AccountImport.objects.latest("created_at")
    report = ImportReport.from_dict(record.report)
    confirm = client.post(
        "/admin/customers/customer/process_import/", {"import_id": record.pk, "confirm": "1"}
    )
    assert confirm.status_code == 302 and confirm["Location"].endswith("/customer/"), confirm
    total = time.perf_counter() - started
    print(
        "ADMIN "
        + json.dumps(
            {"preview": uploaded, "total": total, "created": report.created, "page": len(preview.content)}
        )
    )


def run() -> list[Result]:
    from django.conf import settings

    work = Path(tempfile.mkdtemp(prefix="bench-csv-"))
    try:
        return _run(work, settings.DATABASES["default"]["ENGINE"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, engine: str) -> list[Result]:
    assert engine.endswith("postgresql"), "run through `python -m bench csv` (PostgreSQL)"
    env = {**os.environ, "DJANGO_MEDIA_ROOT": str(work / "media")}
    accounts, baseline_rows = work / "accounts.csv", work / "customers-table.csv"
    progress(f"generating {ROWS:,} accounts")
    generate(accounts, ROWS, baseline_rows)
    results: list[Result] = []

    progress("PostgreSQL: COPY baseline, then import_accounts of new accounts")
    copy_rate = _pg_copy_baseline(baseline_rows)
    wall, peak, output = run_measured(manage("import_accounts", str(accounts)), env)
    results.append(
        Result(
            "import_accounts, 100k new accounts (PostgreSQL)",
            import_rate(output),
            copy_rate,
            "rows/s",
            "driver COPY into customers_customer",
            f"peak {peak:.0f} MB; wall {wall:.1f} s; + contact, card, audit",
            "higher",
        )
    )
    wall, peak, output = run_measured(manage("import_accounts", str(accounts)), env)
    assert "100,000 unchanged" in output, output
    results.append(
        Result(
            "re-import of the same file (PostgreSQL)",
            import_rate(output),
            None,
            "rows/s",
            note=f"peak {peak:.0f} MB; wall {wall:.1f} s; all unchanged",
            better="higher",
        )
    )

    invoices = _add_open_invoices()
    progress(f"export of {ROWS:,} accounts ({invoices:,} open invoices) and its COPY TO baseline")
    copy_to_rate = _pg_copy_to_baseline()
    out = work / "export.csv"
    wall, peak, output = run_measured(manage("export_accounts", str(out)), env)
    results.append(
        Result(
            "export_accounts, 100k accounts (PostgreSQL)",
            import_rate(output),
            copy_to_rate,
            "rows/s",
            "COPY (same query) TO STDOUT",
            f"peak {peak:.0f} MB; wall {wall:.1f} s",
            "higher",
        )
    )

    progress("admin import: upload and preview, then confirm")
    _truncate()
    wall, peak, admin = _admin(accounts, env)
    assert admin["created"] == ROWS, admin
    results.append(
        Result(
            "admin import 100k: preview + confirm (PostgreSQL)",
            admin["total"],
            None,
            "s",
            note=f"peak {peak:.0f} MB; preview {admin['preview']:.1f} s; page {admin['page'] // 1024} KB",
        )
    )

    if BIG_ROWS:
        big = work / "accounts-big.csv"
        progress(f"generating {BIG_ROWS:,} accounts for the memory check")
        generate(big, BIG_ROWS)
        _truncate()
        progress(f"import_accounts of {BIG_ROWS:,} new accounts (PostgreSQL)")
        wall, peak, output = run_measured(manage("import_accounts", str(big)), env)
        results.append(
            Result(
                f"import_accounts, {BIG_ROWS // 1000:,}k new accounts: peak RSS",
                peak,
                None,
                "MB",
                note=f"{import_rate(output):,.0f} rows/s; wall {wall:.0f} s; file {big.stat().st_size >> 20} MB",
            )
        )
        big.unlink()

    results.extend(_sqlite(work, accounts, baseline_rows))
    return results


def _sqlite(work: Path, accounts: Path, baseline_rows: Path) -> list[Result]:
    database = work / "bench.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DJANGO_MEDIA_ROOT": str(work / "media")}
    progress("SQLite: migrate, executemany baseline, import, re-import, export")
    subprocess.run(manage("migrate", "--verbosity", "0"), env=env, check=True)
    baseline = _sqlite_executemany_baseline(baseline_rows, database)
    results = []
    wall, peak, output = run_measured(manage("import_accounts", str(accounts)), env)
    results.append(
        Result(
            "import_accounts, 100k new accounts (SQLite)",
            import_rate(output),
            baseline,
            "rows/s",
            "executemany into customers_customer",
            f"peak {peak:.0f} MB; wall {wall:.1f} s; + contact, card, audit",
            "higher",
        )
    )
    wall, peak, output = run_measured(manage("import_accounts", str(accounts)), env)
    results.append(
        Result(
            "re-import of the same file (SQLite)",
            import_rate(output),
            None,
            "rows/s",
            note=f"peak {peak:.0f} MB; wall {wall:.1f} s; all unchanged",
            better="higher",
        )
    )
    wall, peak, output = run_measured(manage("export_accounts", str(work / "export-sqlite.csv")), env)
    results.append(
        Result(
            "export_accounts, 100k accounts (SQLite)",
            import_rate(output),
            None,
            "rows/s",
            note=f"peak {peak:.0f} MB; wall {wall:.1f} s",
            better="higher",
        )
    )
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["admin"]:
        admin_import(sys.argv[2])
