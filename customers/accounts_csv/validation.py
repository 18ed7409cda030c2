"""Per-row validation with the models' own fields and validators, so the CSV, the admin and the database
accept exactly the same values.

Validation is pure Python over one row at a time: nothing here reads the database. Checks that need more
than one row (duplicate ``external_id``) run set-based on the staging table, see ``staging.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, validate_email
from django.db import models
from django.db.models.fields import NOT_PROVIDED

from customers.accounts_csv.columns import (
    COLUMNS,
    COLUMNS_BY_NAME,
    CUSTOMER_FIELDS,
    REQUIRED_COLUMNS,
    Group,
    normalise_header,
    unescape_cell,
)
from customers.currencies import is_currency, minor_unit_exponent
from customers.models import Contact, Customer, PaymentMethod
from customers.money import to_minor_units
from customers.validators import validate_country

# The staging table's columns, in the order :meth:`RowValidator.validate` returns them.
STAGE_COLUMNS: tuple[str, ...] = (
    "line",
    "external_id",
    "ok",
    "name",
    "email",
    "company",
    "segment",
    "currency",
    "locale",
    "time_zone",
    "country",
    "contact_name",
    "contact_email",
    "pm_type",
    "pm_brand",
    "pm_last4",
    "pm_exp_month",
    "pm_exp_year",
    # NULL: the file says nothing about them (column left out, or cell empty), so the stored value stays;
    # a new method gets the model's default.
    "pm_funding",
    "pm_country",
)
# An invalid row is staged with its line and key only, so duplicates among invalid rows are reported too.
_BLANK_VALUES = (None,) * (len(STAGE_COLUMNS) - 3)
_NO_PAYMENT = (None,) * 7
MAX_VALUE_IN_ERROR = 80
MAX_REASON_IN_ERROR = 300
# Customer columns that cannot be empty when the file has them (left out, they keep their values).
REQUIRED_WHEN_PRESENT = frozenset({"name", "currency", "locale", "time_zone"})
MEMO_LIMIT = 20_000
# Plain addresses (name.tag+x@sub.example.com): a strict subset of what Django's EmailValidator accepts,
# checked with one regular expression. Anything else, valid or not, goes through the validator itself.
PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z"
)


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    message: str
    value: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message, "value": self.value}


def _shorten(value: str, limit: int = MAX_VALUE_IN_ERROR) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _reason(error: ValidationError) -> str:
    # Some validators quote the whole value in their message; a 10 kB cell must not make a 10 kB reason.
    return _shorten(" ".join(error.messages), MAX_REASON_IN_ERROR)


Cleaner = Callable[[str], Any]


class _Answers(dict[str, Any]):
    """Cleaned values by raw value, filled on first sight. Invalid values raise and are not kept."""

    def __init__(self, clean: Cleaner) -> None:
        super().__init__()
        self.clean = clean

    def __missing__(self, value: str) -> Any:
        cleaned = self.clean(value)
        if len(self) < MEMO_LIMIT:
            self[value] = cleaned
        return cleaned


def field_cleaner(model: type[models.Model], name: str, *, memo: bool = False) -> Cleaner:
    """A function that cleans one cell with the model field's own ``clean()`` (its validators and choices).

    Raises ``ValidationError`` with the model's message. Columns with few distinct values (currencies, time
    zones) remember their answers; plain length-limited text takes a shortcut that accepts exactly what
    ``clean()`` accepts and defers to it for the error message.
    """
    field = model._meta.get_field(name)

    def full(value: str) -> Any:
        return field.clean(value, None)

    if isinstance(field, models.EmailField) and field.validators[0] == validate_email:
        limit = field.max_length or 0

        def email(value: str) -> Any:
            if len(value) <= limit and PLAIN_EMAIL.match(value):
                return value
            return full(value) if value or not field.blank else value

        return email

    if not field.choices and all(type(v) is MaxLengthValidator for v in field.validators):
        limit: int = field.max_length or 0
        blank_ok = field.blank

        def length_only(value: str) -> Any:
            if len(value) <= limit and (value or blank_ok):
                return value
            return full(value)

        return length_only
    if not memo:
        return full
    # A dict's own lookup is the cheapest call there is; only values not seen yet reach clean().
    return _Answers(full).__getitem__


COUNTRY_MESSAGE = (
    "Not an ISO 3166 two-letter country code: use two letters, e.g. US, DE or fr, or leave it empty."
)


def country_cleaner(model: type[models.Model], name: str) -> Cleaner:
    """Cleans a country cell: any case in the file, stored in capitals, empty allowed.

    Files from other systems often write ``us`` or ``De``; the model (and the admin) only take capitals,
    so the value is upper-cased first and then held to the model field and ``validate_country``. Only ASCII
    is upper-cased: ``"ß".upper()`` is ``"SS"``, which must not pass for a country.
    """
    field = model._meta.get_field(name)

    def clean(value: str) -> str:
        code = value.upper() if value.isascii() else value
        try:
            field.clean(code, None)
            validate_country(code)
        except ValidationError:
            raise ValidationError(COUNTRY_MESSAGE, code="invalid_country") from None
        return code

    return _Answers(clean).__getitem__


def choice_cleaner(model: type[models.Model], name: str) -> Cleaner:
    """Cleans a cell of a field with choices, case-insensitively; the error lists the allowed values."""
    field = model._meta.get_field(name)
    allowed = [str(value) for value, _label in field.choices or ()]
    message = f"Must be one of {', '.join(allowed)} (any case), or empty."

    def clean(value: str) -> Any:
        lowered = value.lower()
        if lowered not in allowed:
            raise ValidationError(message, code="invalid_choice")
        return field.clean(lowered, None)

    return _Answers(clean).__getitem__


class _NeedsFullCheck(Exception):
    """The fast path met something it leaves to the thorough one."""


@dataclass
class Layout:
    """Where each known column sits in the file, and what the header row got wrong."""

    positions: dict[str, int]
    width: int
    ignored: list[str]
    errors: list[RowError]

    @property
    def present(self) -> frozenset[str]:
        return frozenset(self.positions)


def read_header(line: int, cells: list[str]) -> Layout:
    positions: dict[str, int] = {}
    ignored: list[str] = []
    errors: list[RowError] = []
    for index, raw in enumerate(cells):
        name = normalise_header(raw)
        if not name:
            continue
        if name not in COLUMNS_BY_NAME:
            ignored.append(raw.strip())
        elif name in positions:
            errors.append(RowError(line, name, "This column appears twice in the header.", raw.strip()))
        else:
            positions[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in positions]
    if missing:
        errors.append(RowError(line, ", ".join(missing), "Required column missing from the header row.", ""))
    for group in (Group.BILLING_CONTACT, Group.PAYMENT_METHOD):
        names = [c.name for c in COLUMNS if c.group == group and not c.optional]
        found = [c.name for c in COLUMNS if c.group == group and c.name in positions]
        if found and any(n not in positions for n in names):
            errors.append(
                RowError(
                    line,
                    ", ".join(n for n in names if n not in positions),
                    f"The {group.replace('_', ' ')} columns go together: add the missing ones, or remove "
                    f"{', '.join(found)}.",
                )
            )
    return Layout(positions=positions, width=len(cells), ignored=ignored, errors=errors)


def _default(model: type[models.Model], name: str) -> Any:
    field = model._meta.get_field(name)
    # A field with only a database default (db_default) gives an expression from get_default(); the
    # staging table needs the value itself.
    if not field.has_default() and field.db_default is not NOT_PROVIDED:
        return field.db_default
    return field.get_default()


class RowValidator:
    """Turns one CSV record into one staging row (see ``STAGE_COLUMNS``) and the errors found in it.

    This runs once per row of files with millions of rows, so it avoids per-cell function calls where a
    plain expression does the same.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.width = layout.width
        positions = layout.positions
        self._external_id = (positions["external_id"], field_cleaner(Customer, "external_id"))
        # (column, position or None when left out of the file, cleaner, default)
        self._customer: list[tuple[str, int | None, Cleaner, Any]] = []
        for name in CUSTOMER_FIELDS[1:]:
            memo = name in ("segment", "currency", "locale", "time_zone")
            if name == "country":
                cleaner = country_cleaner(Customer, name)
            else:
                cleaner = field_cleaner(Customer, name, memo=memo)
            # Left out of the file: new accounts get the model default, existing ones keep theirs.
            self._customer.append((name, positions.get(name), cleaner, _default(Customer, name)))
        self._currency_position = positions["currency"]
        self._contact = (
            (positions["billing_contact_name"], positions["billing_contact_email"])
            if "billing_contact_email" in positions
            else None
        )
        self._contact_name = field_cleaner(Contact, "name")
        self._contact_email = field_cleaner(Contact, "email")
        self._payment = (
            tuple(positions[c.name] for c in COLUMNS if c.group == Group.PAYMENT_METHOD and not c.optional)
            if "payment_method_type" in positions
            else None
        )
        # Optional columns of the group (read_header makes sure they only come with the others).
        self._pm_funding_position = positions.get("payment_method_funding")
        self._pm_country_position = positions.get("payment_method_country")
        self._pm_funding = choice_cleaner(PaymentMethod, "funding")
        self._pm_country = country_cleaner(PaymentMethod, "country")
        self._pm_cleaners = (
            field_cleaner(PaymentMethod, "type", memo=True),
            field_cleaner(PaymentMethod, "brand", memo=True),
            field_cleaner(PaymentMethod, "last4", memo=True),
            field_cleaner(PaymentMethod, "exp_month", memo=True),
            field_cleaner(PaymentMethod, "exp_year", memo=True),
        )
        self._balance_position = positions.get("open_balance")
        self._due_date_position = positions.get("oldest_due_date")
        self._names_by_position = {position: name for name, position in positions.items()}

    def validate(self, line: int, raw: list[str]) -> tuple[tuple[Any, ...], list[RowError]]:
        """The staging row and its errors (none when the row is valid)."""
        if len(raw) == self.width:
            cells = [c.strip() for c in raw]
            joined = "".join(cells)
            # Quotes (possibly escaped formulae) and NUL characters are rare: the thorough path has them.
            if "'" not in joined and "\0" not in joined:
                try:
                    return self._valid_row(line, cells), []
                except (ValidationError, _NeedsFullCheck):
                    pass
        return self.check_row(line, raw)

    def _valid_row(self, line: int, cells: list[str]) -> tuple[Any, ...]:
        """The fast path, for the rows that are valid (nearly all of them).

        Same cleaners as :meth:`check_row`, but it stops at the first problem, which ``check_row`` then
        describes in full. Any row it accepts, ``check_row`` accepts with the same values (tests hold both
        to that).
        """
        position, clean = self._external_id
        external_id = cells[position]
        if not external_id:
            raise _NeedsFullCheck
        clean(external_id)
        values = [
            default if position is None else cleaner(cells[position])
            for _, position, cleaner, default in self._customer
        ]
        contact: tuple[Any, Any] = (None, None)
        if self._contact:
            name, email = cells[self._contact[0]], cells[self._contact[1]]
            if email:
                contact = (self._contact_name(name), self._contact_email(email))
            elif name:
                raise _NeedsFullCheck
        payment: tuple[Any, ...] = _NO_PAYMENT
        if self._payment:
            kind, brand, last4, month, year = (cells[p] for p in self._payment)
            funding_at, country_at = self._pm_funding_position, self._pm_country_position
            funding = cells[funding_at] if funding_at is not None else ""
            country = cells[country_at] if country_at is not None else ""
            if kind or brand or last4 or month or year or funding or country:
                if not kind or bool(month) != bool(year):
                    raise _NeedsFullCheck
                clean_type, clean_brand, clean_last4, clean_month, clean_year = self._pm_cleaners
                exp_month = exp_year = None
                if month:
                    exp_month, exp_year = clean_month(month), clean_year(year)
                    if not (1 <= exp_month <= 12 and 1000 <= exp_year <= 9999):
                        raise _NeedsFullCheck
                payment = (
                    clean_type(kind),
                    clean_brand(brand),
                    clean_last4(last4) if last4 else "",
                    exp_month,
                    exp_year,
                    self._pm_funding(funding) if funding else None,
                    self._pm_country(country) if country else None,
                )
        if self._balance_position is not None or self._due_date_position is not None:
            errors: list[RowError] = []
            if self._balance_position is not None:
                self._balance(errors, line, cells[self._balance_position], cells[self._currency_position])
            if self._due_date_position is not None:
                self._due_date(errors, line, cells[self._due_date_position])
            if errors:
                raise _NeedsFullCheck
        return (line, external_id, True, *values, *contact, *payment)

    def check_row(self, line: int, raw: list[str]) -> tuple[tuple[Any, ...], list[RowError]]:
        """The thorough path: every problem of the row, each with its column and reason."""
        errors: list[RowError] = []
        width = self.width
        if len(raw) != width:
            if len(raw) > width and not any(c.strip() for c in raw[width:]):
                raw = raw[:width]  # trailing empty cells, as some spreadsheets write them
            else:
                # The cells may be shifted, so checking them one by one would only add noise.
                error = RowError(line, "", f"Expected {width} cells like the header row, found {len(raw)}.")
                key_position = self._external_id[0]
                key = raw[key_position].strip() if key_position < len(raw) else ""
                return (line, key.replace("\0", "\ufffd"), False, *_BLANK_VALUES), [error]
        cells = [c.strip() for c in raw]
        joined = "".join(cells)
        if "\0" in joined:
            for index, cell in enumerate(cells):
                if "\0" in cell and index in self._names_by_position:
                    errors.append(
                        RowError(
                            line,
                            self._names_by_position[index],
                            "Contains a NUL character, which the database refuses.",
                        )
                    )
        if "'" in joined:
            cells = [unescape_cell(c) for c in cells]

        position, cleaner = self._external_id
        external_id = cells[position]
        if not external_id:
            errors.append(RowError(line, "external_id", "Required: the key of the account."))
        else:
            self._check(errors, line, "external_id", external_id, cleaner)

        values: list[Any] = []
        for name, position, cleaner, default in self._customer:
            if position is None:
                values.append(default)
                continue
            value = cells[position]
            if not value and name in REQUIRED_WHEN_PRESENT:
                errors.append(
                    RowError(
                        line, name, "Required (leave the column out of the file to keep current values)."
                    )
                )
                values.append(None)
                continue
            try:
                values.append(cleaner(value))
            except ValidationError as error:
                errors.append(RowError(line, name, _reason(error), _shorten(value)))
                values.append(None)

        contact = self._clean_contact(errors, line, cells) if self._contact else (None, None)
        payment = self._clean_payment(errors, line, cells) if self._payment else _NO_PAYMENT
        if self._balance_position is not None:
            self._balance(errors, line, cells[self._balance_position], cells[self._currency_position])
        if self._due_date_position is not None:
            self._due_date(errors, line, cells[self._due_date_position])

        if errors:
            # Rows with errors are still staged by key, so duplicates among them are reported too.
            return (line, external_id.replace("\0", "\ufffd"), False, *_BLANK_VALUES), errors
        return (line, external_id, True, *values, *contact, *payment), errors

    @staticmethod
    def _check(errors: list[RowError], line: int, column: str, value: str, cleaner: Cleaner) -> Any:
        try:
            return cleaner(value)
        except ValidationError as error:
            errors.append(RowError(line, column, _reason(error), _shorten(value)))
            return None

    def _clean_contact(self, errors: list[RowError], line: int, cells: list[str]) -> tuple[Any, Any]:
        assert self._contact is not None
        name, email = (cells[p] for p in self._contact)
        if not email:
            if name:
                errors.append(
                    RowError(line, "billing_contact_email", "Required when billing_contact_name is set.")
                )
            return None, None
        return (
            self._check(errors, line, "billing_contact_name", name, self._contact_name),
            self._check(errors, line, "billing_contact_email", email, self._contact_email),
        )

    def _optional_payment_cells(self, cells: list[str]) -> tuple[str, str]:
        """The funding and issuing country cells, empty when their column is left out of the file."""
        funding, country = self._pm_funding_position, self._pm_country_position
        return (
            cells[funding] if funding is not None else "",
            cells[country] if country is not None else "",
        )

    def _clean_payment(self, errors: list[RowError], line: int, cells: list[str]) -> tuple[Any, ...]:
        assert self._payment is not None
        kind, brand, last4, month, year = (cells[p] for p in self._payment)
        funding, country = self._optional_payment_cells(cells)
        clean_type, clean_brand, clean_last4, clean_month, clean_year = self._pm_cleaners
        if not (kind or brand or last4 or month or year or funding or country):
            return _NO_PAYMENT
        if not kind:
            errors.append(
                RowError(line, "payment_method_type", "Required when any payment method column is set.")
            )
        else:
            kind = self._check(errors, line, "payment_method_type", kind, clean_type)
        brand = self._check(errors, line, "payment_method_brand", brand, clean_brand)
        last4 = self._check(errors, line, "payment_method_last4", last4, clean_last4) if last4 else ""
        exp_month = exp_year = None
        if bool(month) != bool(year):
            errors.append(
                RowError(
                    line,
                    "payment_method_exp_month" if not month else "payment_method_exp_year",
                    "Give both the expiry month and year, or neither.",
                )
            )
        elif month:
            exp_month = self._check(errors, line, "payment_method_exp_month", month, clean_month)
            if exp_month is not None and not 1 <= exp_month <= 12:
                errors.append(
                    RowError(line, "payment_method_exp_month", "Must be between 1 and 12.", _shorten(month))
                )
            exp_year = self._check(errors, line, "payment_method_exp_year", year, clean_year)
            if exp_year is not None and not 1000 <= exp_year <= 9999:
                errors.append(
                    RowError(line, "payment_method_exp_year", "Must have four digits.", _shorten(year))
                )
        # Empty: the file does not know, so the stored value stays (see STAGE_COLUMNS).
        funding = (
            self._check(errors, line, "payment_method_funding", funding, self._pm_funding)
            if funding
            else None
        )
        country = (
            self._check(errors, line, "payment_method_country", country, self._pm_country)
            if country
            else None
        )
        return kind, brand, last4, exp_month, exp_year, funding, country

    @staticmethod
    def _balance(errors: list[RowError], line: int, value: str, currency: str) -> None:
        if not value:
            return
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            message = "Not a number: use a dot for decimals and no thousands separators, e.g. 1234.50."
        elif amount < 0:
            message = "Must not be negative."
        elif not is_currency(currency):
            return  # the currency column carries the error
        else:
            try:
                to_minor_units(amount, currency)
                return
            except ValueError:
                message = f"{currency} amounts have at most {minor_unit_exponent(currency)} decimal places."
        errors.append(RowError(line, "open_balance", message, _shorten(value)))

    @staticmethod
    def _due_date(errors: list[RowError], line: int, value: str) -> None:
        if not value:
            return
        try:
            date.fromisoformat(value)
            return
        except ValueError:
            pass
        try:
            datetime.fromisoformat(value)
        except ValueError:
            errors.append(
                RowError(line, "oldest_due_date", "Not an ISO 8601 date, e.g. 2026-03-31.", _shorten(value))
            )
