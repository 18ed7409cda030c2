"""Totals across currencies, only when a conversion is configured (REPORTING_CURRENCY and rates).

Converting the per-currency sums (a handful of rows) at fixed configured rates is an approximation for a
quick read; the per-currency figures stay the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from customers.currencies import minor_unit_exponent
from customers.money import to_major_units
from reporting import conf
from reporting.selectors.dashboard import CurrencyFigures


@dataclass(frozen=True)
class ConvertedTotals:
    currency: str
    failed_minor: int | None
    recovered_minor: int | None
    at_risk_minor: int | None
    missing_rates: tuple[str, ...]


def _convert(amounts: dict[str, int], rates: dict[str, Decimal], currency: str) -> int:
    total = sum(to_major_units(amount, code) * rates[code] for code, amount in amounts.items())
    return int((Decimal(total).scaleb(minor_unit_exponent(currency))).quantize(Decimal(1), ROUND_HALF_EVEN))


def converted_totals(figures: Sequence[CurrencyFigures]) -> ConvertedTotals | None:
    """None without a configured reporting currency; no totals when a currency present has no rate."""
    currency = conf.reporting_currency()
    if not currency:
        return None
    rates = conf.exchange_rates()
    missing = tuple(sorted(f.currency for f in figures if f.currency not in rates))
    if missing:
        return ConvertedTotals(currency, None, None, None, missing)
    return ConvertedTotals(
        currency,
        _convert({f.currency: f.failed_minor for f in figures}, rates, currency),
        _convert({f.currency: f.recovered_minor for f in figures}, rates, currency),
        _convert({f.currency: f.at_risk_minor for f in figures}, rates, currency),
        (),
    )
