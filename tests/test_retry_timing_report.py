"""The retry timing calibration page: deciles of predicted success against outcomes, smart vs fixed with
their intervals and a verdict that refuses to guess, who may read it, its empty state and its query count.

Attempts are written directly with known predictions and outcomes (as in tests/factories/reporting.py): the
page reads history, and one invoice per attempt keeps the one-success-per-invoice constraint satisfied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer, Invoice
from dunning.models import AttemptSource, AttemptStatus, PaymentAttempt
from reporting.selectors.retry_timing import (
    MIN_RETRIES_TO_COMPARE,
    ModeSummary,
    RetryTimingFilters,
    compare_modes,
    retry_timing_report,
)
from tests.factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db
PAGE = reverse("reporting:retry_timing")
EMPTY = "No settled retries with a prediction yet"


@dataclass(frozen=True)
class Retry:
    mode: str = "smart"
    predicted: float | None = 0.5
    status: str = AttemptStatus.SUCCEEDED
    amount_minor: int = 1000
    days_ago: int = 1
    source: str = AttemptSource.RETRY
    processed: bool = True


def make_retries(customer: Customer, retries: list[Retry]) -> None:
    """One invoice per attempt (attempt 2, after a failed initial charge that the page does not read)."""
    now = timezone.now()
    invoices = Invoice.objects.bulk_create(
        [
            InvoiceFactory.build(
                customer=customer, amount_due_minor=r.amount_minor, currency=customer.currency
            )
            for r in retries
        ]
    )
    PaymentAttempt.objects.bulk_create(
        PaymentAttempt(
            invoice=invoice,
            number=2,
            source=r.source,
            status=r.status,
            processed=r.processed,
            amount_minor=r.amount_minor,
            currency=customer.currency,
            gateway="simulated",
            timing_mode=r.mode if r.source == AttemptSource.RETRY else "",
            predicted_success=r.predicted,
            retry_number=1,
            created_at=now - timedelta(days=r.days_ago),
        )
        for invoice, r in zip(invoices, retries, strict=True)
    )


def known_retries() -> list[Retry]:
    """100 predicted retries, i = 0..99, predicted (i + 0.5) %: decile d holds i = 10(d−1)..10d−1, with a
    mean prediction of (10d − 5) % and d successes of 10. Even i are smart, odd i fixed, so smart has
    ceil(d/2) of decile d's successes (30 in all) and fixed floor(d/2) (25); all EUR 10.00."""
    retries = []
    for i in range(100):
        decile, rank = divmod(i, 10)
        succeeded = rank <= decile
        # A success after the invoice was already paid is still money the retry moved: a success.
        status = AttemptStatus.DUPLICATE if i == 99 else AttemptStatus.SUCCEEDED
        retries.append(
            Retry(
                mode="smart" if i % 2 == 0 else "fixed",
                predicted=(i + 0.5) / 100,
                status=status if succeeded else AttemptStatus.FAILED,
            )
        )
    return retries


# Rows the page must leave out: in flight, never processed, not a tick retry, outside the period.
NOISE = [
    Retry(status=AttemptStatus.PENDING, predicted=0.99),
    Retry(status=AttemptStatus.UNKNOWN, predicted=0.99),
    Retry(status=AttemptStatus.FAILED, processed=False, predicted=0.99),
    Retry(source=AttemptSource.PORTAL, predicted=0.99),
    Retry(days_ago=200, predicted=0.99),
]


@pytest.fixture
def known() -> Customer:
    eur = CustomerFactory(currency="EUR")
    make_retries(eur, known_retries() + NOISE)
    # A settled smart retry from before predictions were recorded, in another currency: in the smart vs
    # fixed figures, not in the deciles.
    make_retries(CustomerFactory(currency="USD"), [Retry(predicted=None, amount_minor=2500)])
    # A settled tick retry from before timing modes: in the deciles only if it had a prediction (it has not).
    make_retries(eur, [Retry(mode="", predicted=None, status=AttemptStatus.FAILED)])
    return eur


def grant(user) -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(
        Permission.objects.get(codename="view_dashboard", content_type__app_label="reporting")
    )


@pytest.fixture
def reader(staff_user) -> Client:  # type: ignore[no-untyped-def]
    grant(staff_user)
    client = Client()
    client.force_login(staff_user)
    return client


def default_report():  # type: ignore[no-untyped-def]
    return retry_timing_report(filters=RetryTimingFilters.default(timezone.now().date()))


def test_deciles_split_the_predicted_retries_into_tenths_with_their_actual_shares(known) -> None:  # type: ignore[no-untyped-def]
    report = default_report()
    assert [d.decile for d in report.deciles] == list(range(1, 11))
    assert [d.retries for d in report.deciles] == [10] * 10
    assert [d.successes for d in report.deciles] == list(range(1, 11))
    assert [d.actual.estimate for d in report.deciles] == pytest.approx([d / 10 for d in range(1, 11)])
    assert [d.mean_predicted for d in report.deciles] == pytest.approx(
        [(10 * d - 5) / 100 for d in range(1, 11)]
    )
    first, last = report.deciles[0], report.deciles[-1]
    assert (first.min_predicted, first.max_predicted) == pytest.approx((0.005, 0.095))
    # Wilson at 1/10 and 10/10.
    assert (round(first.actual.low, 4), round(first.actual.high, 4)) == (0.0179, 0.4042)
    assert (last.actual.low, last.actual.high) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert report.predicted_retries == 100
    # Each decile's gap: |(10d − 5) % − 10d %| = 5 points.
    assert report.calibration_error == pytest.approx(0.05)


def test_smart_and_fixed_figures_per_mode_and_currency(known) -> None:  # type: ignore[no-untyped-def]
    smart, fixed = default_report().modes
    assert (smart.mode, smart.retries, smart.successes) == ("smart", 51, 31)
    assert (fixed.mode, fixed.retries, fixed.successes) == ("fixed", 50, 25)
    assert smart.share is not None and smart.share.estimate == pytest.approx(31 / 51)
    eur, usd = smart.currencies
    assert (eur.currency, eur.retries, eur.successes, eur.recovered_minor) == ("EUR", 50, 30, 30_000)
    assert (usd.currency, usd.retries, usd.recovered_minor) == ("USD", 1, 2500)
    assert eur.value_per_retry is not None and eur.value_per_retry.estimate == 600
    assert eur.value_per_retry.low < 600 < eur.value_per_retry.high
    assert eur.sampled == eur.retries  # small enough to resample every retry
    [fixed_eur] = fixed.currencies
    assert (fixed_eur.recovered_minor, fixed_eur.value_per_retry.estimate) == (25_000, 500)


def test_the_page_shows_the_figures_and_links_back(reader, known) -> None:  # type: ignore[no-untyped-def]
    response = reader.get(PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="chart-calibration"' in page and 'id="chart-calibration-data"' in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "cdn" not in page.lower()
    assert "when it says 30&nbsp;%, about 30&nbsp;% of" in page
    assert "€300.00" in page and "€250.00" in page and "$25.00" in page  # recovered per currency
    assert "€6.00" in page and "€5.00" in page  # value per retry
    assert response.context["chart"]["points"][0] == {
        "x": 0.05, "y": 0.1, "low": 0.0179, "high": 0.4042, "decile": 1, "retries": 10,
    }  # fmt: skip
    assert reverse("reporting:retry_timing") in reader.get(reverse("reporting:dashboard")).content.decode()


def test_the_verdict_refuses_to_conclude_on_small_samples(reader, known) -> None:  # type: ignore[no-untyped-def]
    comparison = default_report().comparison
    assert not comparison.conclusive
    assert comparison.verdict.startswith("Too early to compare: 51 smart and 50 fixed")
    assert comparison.difference is not None  # the interval is still shown
    page = reader.get(PAGE).content.decode()
    assert 'data-conclusive="no"' in page and "Too early to compare" in page


def summary(mode: str, successes: int, retries: int) -> ModeSummary:
    return ModeSummary(mode=mode, retries=retries, successes=successes)


def test_the_verdict_refuses_when_the_interval_includes_zero() -> None:
    comparison = compare_modes(smart=summary("smart", 62, 120), fixed=summary("fixed", 58, 120))
    assert not comparison.conclusive
    assert comparison.difference is not None and comparison.difference.contains(0.0)
    assert comparison.verdict.startswith("No clear difference")


def test_the_verdict_refuses_below_the_minimum_even_with_a_large_gap() -> None:
    small = MIN_RETRIES_TO_COMPARE - 1
    comparison = compare_modes(smart=summary("smart", small, small), fixed=summary("fixed", 0, 500))
    assert not comparison.conclusive and comparison.verdict.startswith("Too early")
    assert comparison.difference is not None and not comparison.difference.contains(0.0)


def test_the_verdict_names_the_better_mode_when_the_evidence_is_clear() -> None:
    better = compare_modes(smart=summary("smart", 90, 150), fixed=summary("fixed", 45, 150))
    assert better.conclusive
    assert better.verdict.startswith("Smart retries succeed more often than fixed ones: +30.0 points")
    worse = compare_modes(smart=summary("smart", 45, 150), fixed=summary("fixed", 90, 150))
    assert worse.conclusive and "less often" in worse.verdict and "-30.0 points" in worse.verdict


def test_a_clear_difference_in_the_data_reaches_the_page(reader) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(currency="EUR")
    F, S = AttemptStatus.FAILED, AttemptStatus.SUCCEEDED
    make_retries(customer, [Retry(mode="smart", status=S if i < 90 else F) for i in range(150)])
    make_retries(customer, [Retry(mode="fixed", status=S if i < 45 else F) for i in range(150)])
    page = reader.get(PAGE).content.decode()
    assert 'data-conclusive="yes"' in page
    assert "Smart retries succeed more often than fixed ones: +30.0 points" in page


def test_filters_narrow_the_period_and_the_currency(reader, known) -> None:  # type: ignore[no-untyped-def]
    today = timezone.now().date()
    old = RetryTimingFilters(since=today - timedelta(days=210), until=today - timedelta(days=100))
    report = retry_timing_report(filters=old)
    assert report.predicted_retries == 1 and report.modes[0].retries == 1  # only the 200-day-old retry
    response = reader.get(PAGE, {"currency": "USD"})
    assert response.status_code == 200
    report = response.context["report"]
    assert report.deciles == [] and report.modes[0].retries == 1 and report.modes[1].retries == 0
    page = response.content.decode()
    assert EMPTY in page and 'id="chart-calibration"' not in page
    # The date inputs show the range that applies: the last 90 days by default.
    page = reader.get(PAGE).content.decode()
    assert f'name="since" value="{today - timedelta(days=89):%Y-%m-%d}"' in page


def test_bad_filters_are_a_form_error_not_a_500(reader) -> None:  # type: ignore[no-untyped-def]
    assert reader.get(PAGE, {"since": "2026-05-01", "until": "2026-04-01"}).status_code == 400
    assert reader.get(PAGE, {"since": "yesterday"}).status_code == 400
    assert reader.get(PAGE, {"currency": "XXX"}).status_code == 400


def test_without_data_the_page_explains_why_and_draws_no_chart(reader) -> None:  # type: ignore[no-untyped-def]
    response = reader.get(PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    assert EMPTY in page and "python manage.py learn_retry_timing" in page
    assert "chart-calibration" not in page and "chart.umd.min.js" not in page
    assert "Too early to compare: 0 smart and 0 fixed" in page


def test_anonymous_visitors_are_sent_to_the_admin_login() -> None:
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_permission_get_403(staff_user) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(staff_user)
    assert client.get(PAGE).status_code == 403


def test_non_staff_users_with_the_permission_still_cannot_read(django_user_model) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_user(username="outsider", password="pw", is_staff=False)
    grant(user)
    client = Client()
    client.force_login(user)
    assert client.get(PAGE).status_code == 302


def page_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(PAGE).status_code == 200
    return len(captured)


def test_the_page_query_count_does_not_grow_with_the_retries(reader, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    customer = CustomerFactory(currency="EUR")
    make_retries(customer, known_retries())
    few = page_queries(reader)
    make_retries(customer, known_retries() + known_retries())
    make_retries(CustomerFactory(currency="USD"), known_retries())
    assert page_queries(reader) == few
    # Session and user, the filter's currencies (2), then deciles, totals and the bootstrap sample.
    with django_assert_max_num_queries(9):
        reader.get(PAGE)


def test_large_groups_are_bootstrapped_on_a_fixed_sample_with_the_exact_estimate(
    reader, known, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("reporting.selectors.retry_timing.BOOTSTRAP_ROWS", 30)  # 10 rows for each of 3 groups
    report = default_report()
    smart_eur = report.modes[0].currencies[0]
    assert (smart_eur.retries, smart_eur.sampled) == (50, 10)
    assert smart_eur.value_per_retry is not None and smart_eur.value_per_retry.estimate == 600  # all 50
    assert report.sampled and report == default_report()  # the same sample and interval on every load
    page = reader.get(PAGE).content.decode()
    assert "intervals marked * come" in page
