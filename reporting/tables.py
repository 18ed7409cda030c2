"""The dashboard's numbers as tables (shown under each chart and downloaded as CSV) and as chart data.

Tables and charts are built here from the same selector rows, and every table cell is the exact text the
CSV holds, so a chart, its table and its download cannot disagree. Amounts are in major units without
thousands separators (spreadsheets read them as numbers), one column per currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from customers.money import to_major_units
from reporting.selectors.dashboard import DashboardData, ratio

EMPTY = ""


@dataclass(frozen=True)
class Table:
    slug: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def number(value: int | float | None) -> str:
    return EMPTY if value is None else str(value)


def percent(value: float | None) -> str:
    return EMPTY if value is None else f"{value}%"


def amount(amount_minor: int, currency: str) -> str:
    return str(to_major_units(amount_minor, currency))


def summary_table(data: DashboardData) -> Table:
    rows = [
        (
            f.currency,
            number(f.cases),
            amount(f.failed_minor, f.currency),
            number(f.recovered),
            amount(f.recovered_minor, f.currency),
            percent(ratio(f.recovered, f.cases)),
            percent(f.recovery_rate_by_value),
            number(f.at_risk),
            amount(f.at_risk_minor, f.currency),
        )
        for f in data.headline.by_currency
    ]
    return Table(
        "summary",
        "Per currency",
        (
            "Currency",
            "Failed invoices",
            "Failed amount",
            "Recovered invoices",
            "Recovered amount",
            "Recovery rate by count",
            "Recovery rate by value",
            "Open invoices at risk",
            "Revenue at risk",
        ),
        tuple(rows),
    )


def weekly_table(data: DashboardData) -> Table:
    currencies = data.currencies
    headers = ["Week of", "Failed", "Recovered", "At risk"]
    for currency in currencies:
        headers += [f"Failed ({currency})", f"Recovered ({currency})", f"At risk ({currency})"]
    rows = []
    for week in data.weeks:
        row = [week.week_start.isoformat(), number(week.failed), number(week.recovered), number(week.at_risk)]
        for currency in currencies:
            failed, recovered, at_risk = week.by_currency.get(currency, (0, 0, 0))
            row += [amount(failed, currency), amount(recovered, currency), amount(at_risk, currency)]
        rows.append(tuple(row))
    return Table("weekly", "Weekly trend, by week of failure", tuple(headers), tuple(rows))


def retries_table(data: DashboardData) -> Table:
    rows = tuple(
        (row.label, number(row.attempts), number(row.succeeded), percent(row.success_rate))
        for row in data.retries
    )
    return Table(
        "retries", "Retry success by attempt", ("Retry", "Attempts", "Succeeded", "Success rate"), rows
    )


def channels_table(data: DashboardData) -> Table:
    currencies = data.currencies
    recovered = data.headline.recovered
    amounts = {f.currency: f.channel_minor for f in data.headline.by_currency}
    rows = []
    for row in data.channels:
        cells = [row.label, number(row.recovered), percent(ratio(row.recovered, recovered))]
        cells += [amount(amounts[currency].get(row.key, 0), currency) for currency in currencies]
        rows.append(tuple(cells))
    headers = ("Channel", "Recovered invoices", "Share", *(f"Recovered ({c})" for c in currencies))
    return Table("channels", "Recovery by channel", headers, tuple(rows))


def time_to_recovery_table(data: DashboardData) -> Table:
    recovered = data.headline.recovered
    rows = tuple(
        (row.label, number(row.recovered), percent(ratio(row.recovered, recovered)))
        for row in data.time_to_recovery
    )
    return Table(
        "time-to-recovery", "Time to recovery", ("Days to recovery", "Recovered invoices", "Share"), rows
    )


def declines_table(data: DashboardData) -> Table:
    rows = tuple(
        (
            row.category or "(none)",
            row.code or "(none)",
            number(row.cases),
            number(row.recovered),
            percent(row.recovery_rate),
        )
        for row in data.declines
    )
    headers = ("Category", "Code", "Failed invoices", "Recovered", "Recovery rate")
    return Table("declines", "By first decline", headers, rows)


def policies_table(data: DashboardData) -> Table:
    rows = tuple(
        (
            row.policy,
            f"v{row.version}",
            number(row.cases),
            number(row.recovered),
            percent(row.recovery_rate),
            number(row.median_days),
            number(row.messages_sent),
            number(row.messages_per_recovery),
        )
        for row in data.policies
    )
    headers = (
        "Policy",
        "Version",
        "Failed invoices",
        "Recovered",
        "Recovery rate",
        "Median days to recovery",
        "Messages sent",
        "Messages per recovered invoice",
    )
    return Table("policies", "Policy comparison", headers, rows)


TABLES: dict[str, Callable[[DashboardData], Table]] = {
    "summary": summary_table,
    "weekly": weekly_table,
    "retries": retries_table,
    "channels": channels_table,
    "time-to-recovery": time_to_recovery_table,
    "declines": declines_table,
    "policies": policies_table,
}


def all_tables(data: DashboardData) -> dict[str, Table]:
    return {slug: build(data) for slug, build in TABLES.items()}


# Chart.js configurations, passed to the page as JSON (json_script): data only, no code.
PALETTE = {
    "failed": "#ba2121",
    "recovered": "#2e7d32",
    "at_risk": "#e08e0b",
    "bar": "#417690",
}


def _dataset(label: str, values: list[Any], colour: str, **options: Any) -> dict[str, Any]:
    return {"label": label, "data": values, "backgroundColor": colour, "borderColor": colour, **options}


def charts(data: DashboardData) -> dict[str, dict[str, Any]]:
    weeks = data.weeks
    return {
        "weekly": {
            "type": "bar",
            "data": {
                "labels": [week.week_start.isoformat() for week in weeks],
                "datasets": [
                    _dataset("Failed", [w.failed for w in weeks], PALETTE["failed"]),
                    _dataset("Recovered", [w.recovered for w in weeks], PALETTE["recovered"]),
                    _dataset("At risk", [w.at_risk for w in weeks], PALETTE["at_risk"], type="line"),
                ],
            },
            "y": "Invoices",
        },
        "retries": {
            "type": "bar",
            "data": {
                "labels": [row.label for row in data.retries],
                "datasets": [
                    _dataset("Success rate (%)", [row.success_rate for row in data.retries], PALETTE["bar"]),
                ],
            },
            "y": "Success rate (%)",
        },
        "channels": {
            "type": "bar",
            "data": {
                "labels": [row.label for row in data.channels],
                "datasets": [
                    _dataset(
                        "Recovered invoices", [row.recovered for row in data.channels], PALETTE["recovered"]
                    )
                ],
            },
            "y": "Invoices",
            "horizontal": True,
        },
        "time-to-recovery": {
            "type": "bar",
            "data": {
                "labels": [row.label for row in data.time_to_recovery],
                "datasets": [
                    _dataset(
                        "Recovered invoices", [row.recovered for row in data.time_to_recovery], PALETTE["bar"]
                    )
                ],
            },
            "y": "Invoices",
        },
    }
