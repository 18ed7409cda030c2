"""``GET /metrics``: Prometheus' text format, for the alerts in the README's runbook.

Protected: a scraper sends ``Authorization: Bearer <METRICS_TOKEN>``; staff who may read the reports can
open it in the browser. Without a token configured, only those staff can. Every figure is read from the
database at scrape time (``reporting.selectors.operations``), so any web process gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from reporting.selectors.operations import operations_metrics

STAFF_PERMISSION = "reporting.view_dashboard"


class _DatabaseCollector:
    """A one-scrape collector: the figures of ``operations_metrics`` as Prometheus families."""

    def collect(self) -> Iterator[Metric]:
        for metric in operations_metrics():
            labels = sorted(metric.samples[0][0]) if metric.samples else []
            family: Metric
            if metric.kind == "summary":
                count = metric.samples[0][1] if metric.samples else 0
                family = SummaryMetricFamily(
                    metric.name, metric.help, count_value=count, sum_value=metric.summary_sum
                )
                yield family
                continue
            if metric.kind == "counter":
                family = CounterMetricFamily(metric.name, metric.help, labels=labels)
            else:
                family = GaugeMetricFamily(metric.name, metric.help, labels=labels)
            for sample_labels, value in metric.samples:
                family.add_metric([sample_labels[name] for name in labels], value)
            yield family


def _authorised(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and constant_time_compare(given.strip(), token):
        return True
    user = request.user
    return bool(
        user.is_authenticated and user.is_active and user.is_staff and user.has_perm(STAFF_PERMISSION)
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorised(request):
        response = HttpResponse(
            "Send Authorization: Bearer <METRICS_TOKEN>, or sign in as staff who may view the reports.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DatabaseCollector())  # type: ignore[arg-type]
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
