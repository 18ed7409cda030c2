"""Account CSV files for tests: one good row by default, any column overridden per row."""

from __future__ import annotations

import csv
import io
from typing import Any

from customers.accounts_csv.columns import COLUMN_NAMES


def account_row(number: int = 1, **overrides: Any) -> dict[str, str]:
    """A valid row for account ``acct-<number>``; keyword arguments replace columns."""
    row = {
        "external_id": f"acct-{number}",
        "name": f"Account {number}",
        "email": f"owner{number}@example.com",
        "company": f"Company {number}",
        "segment": "smb",
        "currency": "EUR",
        "locale": "fr-FR",
        "time_zone": "Europe/Paris",
        "country": "FR",
        "billing_contact_name": "Accounts payable",
        "billing_contact_email": f"billing{number}@example.com",
        "payment_method_type": "card",
        "payment_method_brand": "visa",
        "payment_method_last4": f"{number % 10000:04d}",
        "payment_method_exp_month": "12",
        "payment_method_exp_year": "2030",
        "payment_method_funding": "credit",
        "payment_method_country": "FR",
        "open_balance": "",
        "oldest_due_date": "",
    }
    row.update({key: str(value) for key, value in overrides.items()})
    return row


def accounts_csv(
    rows: list[dict[str, str]],
    *,
    columns: list[str] | None = None,
    delimiter: str = ",",
    bom: bool = False,
    header: list[str] | None = None,
) -> bytes:
    """The bytes of a CSV file with ``columns`` (all by default) and the given rows."""
    columns = columns or list(COLUMN_NAMES)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header or columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    return (("\ufeff" if bom else "") + buffer.getvalue()).encode()
