"""The account CSV format: its columns, header matching and spreadsheet-formula escaping."""

from __future__ import annotations

import re
from dataclasses import dataclass


class Group:
    """Columns that only make sense together. A group is in a file entirely or not at all."""

    CUSTOMER = "customer"
    BILLING_CONTACT = "billing_contact"
    PAYMENT_METHOD = "payment_method"
    INFORMATIONAL = "informational"


@dataclass(frozen=True)
class Column:
    name: str
    group: str
    help: str
    required: bool = False  # the header must be in every file
    # May be left out of a file that has the rest of its group. Columns added to a group after files were
    # in circulation are optional, so those files keep importing; an optional column still needs the rest
    # of its group (a card's funding means nothing without the card).
    optional: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("external_id", Group.CUSTOMER, "Your id for the account; the key. Up to 100 characters.", True),
    Column("name", Group.CUSTOMER, "Account name.", True),
    Column("email", Group.CUSTOMER, "Account email address; may be empty."),
    Column("company", Group.CUSTOMER, "Company name; may be empty."),
    Column("segment", Group.CUSTOMER, "Letters, digits, - and _, e.g. smb; may be empty."),
    Column("currency", Group.CUSTOMER, "ISO 4217 code in upper case, e.g. EUR.", True),
    Column("locale", Group.CUSTOMER, "Language tag, e.g. en, fr-FR."),
    Column("time_zone", Group.CUSTOMER, "IANA name, e.g. Europe/Paris."),
    Column("country", Group.CUSTOMER, "ISO 3166 two-letter country code, e.g. US; may be empty."),
    Column("billing_contact_name", Group.BILLING_CONTACT, "Name of the billing contact; may be empty."),
    Column(
        "billing_contact_email", Group.BILLING_CONTACT, "Billing contact email; empty leaves contacts alone."
    ),
    Column("payment_method_type", Group.PAYMENT_METHOD, "card, sepa_debit or us_bank_account."),
    Column("payment_method_brand", Group.PAYMENT_METHOD, "visa, mastercard, amex… or the bank name."),
    Column("payment_method_last4", Group.PAYMENT_METHOD, "Last four digits."),
    Column("payment_method_exp_month", Group.PAYMENT_METHOD, "Expiry month, 1-12."),
    Column("payment_method_exp_year", Group.PAYMENT_METHOD, "Expiry year, four digits."),
    Column(
        "payment_method_funding",
        Group.PAYMENT_METHOD,
        "credit, debit, prepaid or unknown; empty leaves it alone.",
        optional=True,
    ),
    Column(
        "payment_method_country",
        Group.PAYMENT_METHOD,
        "Issuing country, ISO 3166 two-letter code, e.g. US; empty leaves it alone.",
        optional=True,
    ),
    Column("open_balance", Group.INFORMATIONAL, "Export only: total left to pay on open invoices."),
    Column("oldest_due_date", Group.INFORMATIONAL, "Export only: due date of the oldest open invoice."),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
# Columns whose value is stored on the customer row (the others go to contacts and payment methods).
CUSTOMER_FIELDS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.group == Group.CUSTOMER)

_SEPARATORS = re.compile(r"[\s\-]+")


def normalise_header(header: str) -> str:
    """``" Time Zone "`` -> ``"time_zone"``: case, surrounding spaces, inner spaces and hyphens don't matter."""
    return _SEPARATORS.sub("_", header.strip().casefold())


# A spreadsheet evaluates a cell that starts with one of these as a formula (CSV injection). Exports put a
# single quote in front, which Excel and LibreOffice show as text. A leading quote is escaped the same way,
# so that the importer can undo exactly what the exporter did: export -> import is lossless.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
ESCAPED_STARTS = frozenset((*FORMULA_TRIGGERS, "'"))


def escape_cell(value: str) -> str:
    """Make a text cell safe to open in a spreadsheet."""
    if value and value[0] in ESCAPED_STARTS:
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """Undo :func:`escape_cell`. A quote in front of anything else is part of the value."""
    if len(value) > 1 and value[0] == "'" and value[1] in ESCAPED_STARTS:
        return value[1:]
    return value
