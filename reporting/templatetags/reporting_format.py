"""Display helpers for the report pages: money in its currency, shares, and days."""

from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from customers.money import format_money
from reporting.selectors.dashboard import ordinal as to_ordinal
from reporting.tables import Table

register = template.Library()


@register.filter
def money(amount_minor: int | None, currency: str) -> str:
    """``{{ 123450|money:"EUR" }}`` -> ``€1,234.50``."""
    if amount_minor is None:
        return "–"
    return format_money(int(amount_minor), currency)


@register.filter
def money_round(amount_minor: float | None, currency: str) -> str:
    """A mean in minor units (a value per retry), rounded to the nearest minor unit for display."""
    if not isinstance(amount_minor, int | float):  # None, or "" for a missing interval
        return "–"
    return format_money(round(amount_minor), currency)


@register.filter
def share(value: float | None) -> str:
    """A fraction as a percentage: ``0.3079`` -> ``30.8%``."""
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "–"


@register.filter
def points(value: float | None) -> str:
    """A difference of two shares in percentage points, signed: ``0.052`` -> ``+5.2``."""
    return f"{value * 100:+.1f}" if isinstance(value, int | float) else "–"


@register.filter
def pct(value: float | None) -> str:
    return "–" if value is None else f"{value}%"


@register.filter
def days(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value} day" if value == 1 else f"{value} days"


@register.filter
def get_item(mapping: dict[str, str], key: str) -> str:
    return mapping.get(key, key)


@register.filter
def ordinal(number: int) -> str:
    return to_ordinal(int(number))


@register.simple_tag
def report_table(table: Table) -> SafeString:
    """A dashboard table as HTML. Written out here rather than in template loops: a two-year weekly table
    has a couple of thousand cells, and this is many times faster than the template engine for them."""
    head = "".join(f'<th scope="col">{escape(header)}</th>' for header in table.headers)
    rows = []
    for row in table.rows:
        first, *rest = row
        cells = "".join(f"<td>{escape(cell)}</td>" for cell in rest)
        rows.append(f'<tr><th scope="row">{escape(first)}</th>{cells}</tr>')
    if not rows:
        rows.append(f'<tr><td colspan="{len(table.headers)}">No cases in this selection.</td></tr>')
    # Every piece of text above went through escape().
    return mark_safe(
        f'<table class="reporting-table" id="table-{escape(table.slug)}" data-table="{escape(table.slug)}">'
        f'<caption class="visually-hidden">{escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
