from __future__ import annotations

from decimal import Decimal

import pytest

from customers.money import format_money, to_major_units, to_minor_units


@pytest.mark.parametrize(
    ("amount_minor", "currency", "locale", "expected"),
    [
        (123450, "EUR", "en", "€1,234.50"),
        (123450, "EUR", "de-DE", "1.234,50\xa0€"),
        (499, "USD", "en-US", "$4.99"),
        (1234, "JPY", "en", "¥1,234"),
        (1234, "KWD", "en", "KWD1.234"),
        # ISO 4217 decides decimals, even where CLDR would round the display (IQD has 3).
        (100, "IQD", "en", "IQD0.100"),
        (0, "GBP", "en-GB", "£0.00"),
        # An unknown locale falls back to English rather than failing a whole page.
        (99, "USD", "zz", "$0.99"),
    ],
)
def test_format_money(amount_minor: int, currency: str, locale: str, expected: str) -> None:
    assert format_money(amount_minor, currency, locale) == expected


def test_unknown_currency_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="not an ISO 4217"):
        format_money(100, "XYZ")


def test_minor_unit_round_trip() -> None:
    assert to_major_units(12345, "EUR") == Decimal("123.45")
    assert to_minor_units("123.45", "EUR") == 12345
    assert to_minor_units("1234", "JPY") == 1234


def test_amounts_finer_than_the_minor_unit_are_refused() -> None:
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        to_minor_units("1.005", "EUR")
    with pytest.raises(ValueError, match="more than 0 decimal places"):
        to_minor_units("10.5", "JPY")
