"""Admin pieces for very large tables: an estimating paginator, cheap filters and a cheap date hierarchy.

A changelist over a million rows must not ``COUNT(*)`` the whole table, run ``SELECT DISTINCT`` for a
filter, or scan every row to build the date drill-down.
"""

from __future__ import annotations

import calendar
import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.core.paginator import Paginator
from django.db import connections, models
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest
from django.urls import get_script_prefix, reverse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext


def estimated_row_count(queryset: QuerySet[Any]) -> int | None:
    """The planner's row estimate for an unfiltered table on PostgreSQL, or None where there is none."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
        )
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:  # -1: never vacuumed or analysed
        return None
    return int(row[0])


class LargeTablePaginator(Paginator):
    is_estimate = False

    """Counts exactly up to ``ADMIN_EXACT_COUNT_LIMIT`` rows; beyond that it estimates.

    Unfiltered PostgreSQL tables use the planner's estimate (no scan at all). Filtered querysets count at
    most ``limit + 1`` rows, so a broad filter on a huge table costs a bounded scan; when the limit is hit
    the count reads as the limit and the last pages are reached by narrowing the filter.
    """

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        queryset: QuerySet[Any] = self.object_list
        limit: int = settings.ADMIN_EXACT_COUNT_LIMIT
        self.is_estimate = False
        if not queryset.query.where:
            estimate = estimated_row_count(queryset)
            if estimate is not None and estimate > limit:
                self.is_estimate = True
                return estimate
        exact = queryset.order_by()[: limit + 1].count()
        if exact > limit:
            self.is_estimate = True
            return limit
        return exact


@lru_cache(maxsize=256)
def _admin_url_pattern(viewname: str, script_prefix: str) -> str:
    return reverse(viewname, args=[_PK_PLACEHOLDER]).replace(str(_PK_PLACEHOLDER), "{pk}")


_PK_PLACEHOLDER = 987654321987


def admin_change_url(viewname: str, pk: object) -> str:
    """``reverse(viewname, args=[pk])`` for the hot path of a changelist: resolved once, then formatted."""
    return _admin_url_pattern(viewname, get_script_prefix()).format(pk=quote(pk))


class LargeTableAdminMixin:
    """ModelAdmin settings shared by every changelist that can grow to millions of rows."""

    paginator = LargeTablePaginator
    change_list_template = "admin/large_change_list.html"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> str:
        # Same markup as Django's, without rendering a form widget template for every row.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(gettext("Select this object for an action - {}"), obj),
        )


def distinct_values_by_index(queryset: QuerySet[Any], field_name: str) -> list[str]:
    """The distinct non-empty values of an indexed column without ``SELECT DISTINCT``.

    A recursive "skip scan": each step asks the index for the next value above the previous one, so the
    cost grows with the number of distinct values (a dozen currencies), not with the rows (millions).
    Works on PostgreSQL and SQLite.
    """
    model = queryset.model
    table = connections[queryset.db].ops.quote_name(model._meta.db_table)
    column = connections[queryset.db].ops.quote_name(model._meta.get_field(field_name).column)
    sql = f"""
        WITH RECURSIVE skip(value) AS (
            SELECT MIN({column}) FROM {table} WHERE {column} > ''
            UNION ALL
            SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > skip.value)
            FROM skip WHERE skip.value IS NOT NULL
        )
        SELECT value FROM skip WHERE value IS NOT NULL
    """
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class ReadOnlyAdminMixin:
    """For append-only records (audit rows, attempts) and rows only services may change (cases): the admin
    shows them and offers actions, but never adds, edits or deletes them itself."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IndexedValuesFilter(admin.SimpleListFilter):
    """A list filter whose choices are the distinct values of an indexed column, read by skip scan.

    Subclasses set ``source_model`` and ``source_field`` (where the choices come from, ideally a small
    table) and ``parameter_name``, which is also the lookup applied to the filtered queryset.
    """

    source_model: type[models.Model]
    source_field: str = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        values = distinct_values_by_index(self.source_model.objects.all(), self.source_field)
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(**{self.parameter_name: self.value()})
        return queryset


def _to_local(value: datetime.datetime | datetime.date) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return (timezone.localtime(value) if timezone.is_aware(value) else value).date()
    return value


def cheap_date_hierarchy(cl: Any) -> dict[str, Any]:
    """Drop-in for Django's ``date_hierarchy`` tag that never runs ``SELECT DISTINCT`` over the table.

    It asks only for MIN and MAX of the (indexed) field within the current filter, then offers every
    year, month or day in that range. A link may lead to an empty page; that is the price of not scanning
    a million rows on every changelist view.
    """
    field_name: str = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field_name}__{part}" for part in ("year", "month", "day"))
    params = cl.params
    year, month, day = (params.get(f) for f in (year_field, month_field, day_field))
    year, month, day = (v[-1] if isinstance(v, list) else v for v in (year, month, day))

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field_name}__"])

    if year and month and day:
        chosen = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    bounds = cl.queryset.aggregate(first=Min(field_name), last=Max(field_name))
    if not (bounds["first"] and bounds["last"]):
        return {"show": False}
    first, last = _to_local(bounds["first"]), _to_local(bounds["last"])
    if year and month:
        y, m = int(year), int(month)
        days = range(1, calendar.monthrange(y, m)[1] + 1)
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d}),
                    "title": capfirst(formats.date_format(datetime.date(y, m, d), "MONTH_DAY_FORMAT")),
                }
                for d in days
                if first <= datetime.date(y, m, d) <= last
            ],
        }
    if year:
        y = int(year)
        return {
            "show": True,
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m}),
                    "title": capfirst(formats.date_format(datetime.date(y, m, 1), "YEAR_MONTH_FORMAT")),
                }
                for m in range(1, 13)
                if (first.year, first.month) <= (y, m) <= (last.year, last.month)
            ],
        }
    return {
        "show": True,
        "choices": [
            {"link": link({year_field: y}), "title": str(y)} for y in range(first.year, last.year + 1)
        ],
    }
