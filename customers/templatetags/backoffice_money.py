"""``{{ amount_minor|money:currency }}`` for admin templates: integer minor units to text for people."""

from __future__ import annotations

from django import template

from customers.money import format_money

register = template.Library()


@register.filter
def money(amount_minor: int | None, currency: str) -> str:
    if amount_minor is None or not currency:
        return "–"
    return format_money(int(amount_minor), currency)
