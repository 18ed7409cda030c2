"""Staff pages, in the admin's look: the dashboard, its CSV downloads, and the customer and case reports.

Every page needs a staff account with the ``reporting.view_dashboard`` permission. Views parse the filters,
call one selector and render; the numbers all come from ``reporting.selectors``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from customers.accounts_csv.columns import escape_cell
from customers.models import Customer
from dunning.models import DunningCase
from reporting.conversion import converted_totals
from reporting.forms import ReportFilterForm, RetryTimingFilterForm
from reporting.measures import CHANNELS, TIME_TO_RECOVERY_BUCKETS
from reporting.selectors import dashboard
from reporting.selectors.accounts import case_report, customer_report
from reporting.selectors.choices import filter_choices
from reporting.selectors.retry_timing import MIN_RETRIES_TO_COMPARE, retry_timing_report
from reporting.selectors.state import refresh_state
from reporting.services import rollups_refresh
from reporting.tables import TABLES, all_tables, charts

PERMISSION = "reporting.view_dashboard"


def reports_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff only (others go to the admin login), with the reports permission (others get a 403)."""
    return staff_member_required(permission_required(PERMISSION, raise_exception=True)(view))


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


def _form(request: HttpRequest) -> ReportFilterForm:
    return ReportFilterForm(request.GET, choices=filter_choices(), today=timezone.localdate())


@reports_view
@require_GET
def dashboard_view(request: HttpRequest) -> HttpResponse:
    form = _form(request)
    context = _context(request, "Recovery reports", form=form, state=refresh_state())
    if not form.is_valid():
        return TemplateResponse(request, "reporting/dashboard.html", context, status=400)
    filters = form.report_filters()
    data = dashboard(filters=filters)
    tables = all_tables(data)
    context.update(
        data=data,
        tables=tables,
        chart_sections=[
            {"slug": slug, "table": tables[slug], "chart": chart, "data_id": f"chart-{slug}-data"}
            for slug, chart in charts(data).items()
        ],
        other_tables=[tables[slug] for slug in ("declines", "policies", "summary")],
        query=filters.query_string(),
        converted=converted_totals(data.headline.by_currency),
        channel_labels=dict(CHANNELS),
        buckets=TIME_TO_RECOVERY_BUCKETS,
    )
    return TemplateResponse(request, "reporting/dashboard.html", context)


@reports_view
@require_GET
def csv_view(request: HttpRequest, slug: str) -> HttpResponse:
    """One of the dashboard's tables as CSV: the same selector, the same cells."""
    if slug not in TABLES:
        raise Http404("No such table.")
    form = _form(request)
    if not form.is_valid():
        errors = "; ".join(str(e) for field_errors in form.errors.values() for e in field_errors)
        return HttpResponse(
            f"Invalid filters: {errors}\n", status=400, content_type="text/plain; charset=utf-8"
        )
    filters = form.report_filters()
    table = TABLES[slug](dashboard(filters=filters))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"recovery-{slug}-{filters.start.isoformat()}-{filters.end.isoformat()}.csv"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    # A byte order mark, so that Excel reads the labels' accents and arrows as UTF-8.
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow(table.headers)
    # Text from users (policy names, decline codes) must not run as a spreadsheet formula.
    writer.writerows([escape_cell(cell) for cell in row] for row in table.rows)
    return response


@reports_view
@require_POST
def refresh_view(request: HttpRequest) -> HttpResponse:
    """Bring the figures up to date now rather than at the next tick (it only touches reporting's tables)."""
    result = rollups_refresh()
    if result.skipped:
        messages.info(request, "The figures were already up to date.")
    else:
        messages.success(
            request, f"Figures refreshed: {result.cases} case(s) recomputed in {result.duration_ms} ms."
        )
    # Back to the same filters; re-encoded, so that whatever was posted stays a query string.
    query = QueryDict(request.POST.get("query", "")).urlencode()
    return HttpResponseRedirect(reverse("reporting:dashboard") + (f"?{query}" if query else ""))


@reports_view
@require_GET
def customer_view(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=customer_id)
    report = customer_report(customer=customer)
    return TemplateResponse(
        request,
        "reporting/customer.html",
        _context(request, f"Recovery report: {customer.name}", report=report, channel_labels=dict(CHANNELS)),
    )


@reports_view
@require_GET
def case_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(
        DunningCase.objects.select_related("customer", "invoice", "policy_version"), pk=case_id
    )
    report = case_report(case=case)
    return TemplateResponse(
        request,
        "reporting/case.html",
        _context(request, f"Recovery report: case {case.pk}", report=report, channel_labels=dict(CHANNELS)),
    )


@reports_view
@require_GET
def retry_timing_view(request: HttpRequest) -> HttpResponse:
    """Retry timing calibration: the timing model's predictions against outcomes, and smart vs fixed."""
    form = RetryTimingFilterForm(
        request.GET, currencies=filter_choices().currencies, today=timezone.localdate()
    )
    context = _context(request, "Retry timing calibration", form=form, min_retries=MIN_RETRIES_TO_COMPARE)
    if not form.is_valid():
        return TemplateResponse(request, "reporting/retry_timing.html", context, status=400)
    report = retry_timing_report(filters=form.retry_timing_filters())
    context.update(report=report, chart=report.chart() if report.deciles else None)
    return TemplateResponse(request, "reporting/retry_timing.html", context)
