"""The report pages: who may see them, where they are linked from, their filters, their CSV downloads and
their query counts."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.models import Customer
from dunning.models import AttemptSource, AttemptStatus, CaseState
from reporting.services import rollups_refresh
from tests.factories import CustomerFactory
from tests.factories.reporting import END, START, build_known_data, default_version, make_case, sent
from tests.support.html_tables import tables_by_id

pytestmark = pytest.mark.django_db
RANGE = f"start={START.isoformat()}&end={END.isoformat()}"
DASHBOARD = reverse("reporting:dashboard")


def grant(user, codename: str = "view_dashboard") -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="reporting"))


@pytest.fixture
def reader(staff_user) -> Client:  # type: ignore[no-untyped-def]
    grant(staff_user)
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def known():  # type: ignore[no-untyped-def]
    data = build_known_data()
    rollups_refresh(full=True)
    return data


def report_urls(known) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        DASHBOARD,
        reverse("reporting:csv", args=["weekly"]),
        reverse("reporting:customer", args=[known.customers["A"].pk]),
        reverse("reporting:case", args=[known.cases[1].pk]),
    ]


def test_anonymous_visitors_are_sent_to_the_admin_login(known) -> None:  # type: ignore[no-untyped-def]
    for url in report_urls(known):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_permission_get_403(staff_user, known) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(staff_user)
    for url in report_urls(known):
        assert client.get(url).status_code == 403
    assert client.post(reverse("reporting:refresh")).status_code == 403


def test_the_permission_opens_every_report_page(reader, known) -> None:  # type: ignore[no-untyped-def]
    for url in report_urls(known):
        assert reader.get(url).status_code == 200, url


def test_non_staff_users_with_the_permission_still_cannot_read(django_user_model, known) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_user(username="outsider", password="pw", is_staff=False)
    grant(user)
    client = Client()
    client.force_login(user)
    assert client.get(DASHBOARD).status_code == 302


def test_the_admin_index_links_to_the_reports_for_those_who_may_read_them(staff_user, reader) -> None:  # type: ignore[no-untyped-def]
    assert DASHBOARD in reader.get(reverse("admin:index")).content.decode()
    other = type(staff_user).objects.create_user(username="clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(other)
    assert DASHBOARD not in client.get(reverse("admin:index")).content.decode()


def test_customer_and_case_pages_link_to_their_reports(admin_client, known) -> None:  # type: ignore[no-untyped-def]
    customer, case = known.customers["A"], known.cases[1]
    page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert reverse("reporting:customer", args=[customer.pk]) in page
    assert "Portal link" in page  # the portal's own button is still there
    page = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).content.decode()
    assert reverse("reporting:case", args=[case.pk]) in page
    assert "Payment attempts" in page  # dunning's own case page is still there, extended
    report = admin_client.get(reverse("reporting:customer", args=[customer.pk])).content.decode()
    assert reverse("reporting:case", args=[case.pk]) in report


def test_the_dashboard_opens_on_the_last_90_days(reader) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(UTC).date()
    response = reader.get(DASHBOARD)
    assert response.status_code == 200
    data = response.context["data"]
    assert (data.filters.start, data.filters.end) == (today - timedelta(days=89), today)
    # The date inputs show that range, not empty boxes.
    page = response.content.decode()
    assert f'name="start" value="{today - timedelta(days=89):%Y-%m-%d}"' in page
    assert f'name="end" value="{today:%Y-%m-%d}"' in page
    # With only an end date, the start shown is 90 days before it.
    page = reader.get(DASHBOARD, {"end": "2026-03-31"}).content.decode()
    assert 'name="start" value="2026-01-01"' in page and 'name="end" value="2026-03-31"' in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=2026-13-40", "Enter a valid date."),
        ("start=yesterday", "Enter a valid date."),
        ("start=2026-04-02&end=2026-03-01", "The start date is after the end date."),
        ("start=2000-01-01&end=2026-01-01", "Choose at most 10 years at a time."),
        ("currency=XXX1", "Select a valid choice."),
        ("decline_category=weird", "Select a valid choice."),
        ("version=999999", "Select a valid choice."),
    ],
)
def test_bad_filters_are_form_errors_not_server_errors(reader, query: str, message: str) -> None:  # type: ignore[no-untyped-def]
    response = reader.get(f"{DASHBOARD}?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "data" not in response.context
    csv_response = reader.get(reverse("reporting:csv", args=["weekly"]) + f"?{query}")
    assert csv_response.status_code == 400
    assert message in csv_response.content.decode()


def test_a_version_of_another_policy_is_refused(reader, known) -> None:  # type: ignore[no-untyped-def]
    gentle = known.versions["gentle1"]
    default = known.versions["default"]
    response = reader.get(f"{DASHBOARD}?policy={default.policy_id}&version={gentle.pk}")
    assert response.status_code == 400
    assert "This version belongs to another policy." in response.content.decode()


def test_a_currency_without_cases_is_an_empty_report(reader, known) -> None:  # type: ignore[no-untyped-def]
    response = reader.get(f"{DASHBOARD}?{RANGE}&currency=CHF")
    assert response.status_code == 200
    assert response.context["data"].headline.cases == 0


def test_an_unknown_table_is_404(reader) -> None:  # type: ignore[no-untyped-def]
    assert reader.get(reverse("reporting:csv", args=["nope"])).status_code == 404


TABLE_SLUGS = ["weekly", "retries", "channels", "time-to-recovery", "declines", "policies", "summary"]


@pytest.mark.parametrize("slug", TABLE_SLUGS)
def test_each_csv_download_holds_exactly_the_table_on_the_page(reader, known, slug: str) -> None:  # type: ignore[no-untyped-def]
    page = reader.get(f"{DASHBOARD}?{RANGE}").content.decode()
    table = tables_by_id(page)[f"table-{slug}"]
    assert len(table) > 1
    link = reverse("reporting:csv", args=[slug]) + f"?{RANGE}"
    assert link.replace("&", "&amp;") in page
    response = reader.get(link)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"recovery-{slug}-2026-02-26-2026-04-02.csv" in response["Content-Disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == table


def test_the_tables_show_the_known_figures(reader, known) -> None:  # type: ignore[no-untyped-def]
    tables = tables_by_id(reader.get(f"{DASHBOARD}?{RANGE}").content.decode())
    assert tables["table-retries"] == [
        ["Retry", "Attempts", "Succeeded", "Success rate"],
        ["1st retry", "7", "3", "42.9%"],
        ["2nd retry", "3", "1", "33.3%"],
        ["3rd retry", "1", "1", "100.0%"],
    ]
    assert tables["table-summary"][1] == [
        "EUR", "6", "530.00", "4", "430.00", "66.7%", "81.1%", "1", "60.00",
    ]  # fmt: skip
    assert tables["table-summary"][2][:3] == ["JPY", "1", "5000"]  # no decimals in yen
    assert tables["table-time-to-recovery"][-1] == ["30+ days", "1", "16.7%"]


def test_the_charts_plot_the_numbers_of_their_tables(reader, known) -> None:  # type: ignore[no-untyped-def]
    page = reader.get(f"{DASHBOARD}?{RANGE}").content.decode()
    tables = tables_by_id(page)

    def chart(slug: str) -> dict:  # type: ignore[type-arg]
        found = re.search(
            rf'<script id="chart-{slug}-data" type="application/json">(.*?)</script>', page, re.S
        )
        assert found, slug
        return json.loads(found.group(1))

    weekly = chart("weekly")["data"]
    rows = tables["table-weekly"][1:]
    assert weekly["labels"] == [row[0] for row in rows]
    assert [d["data"] for d in weekly["datasets"]] == [[int(row[i]) for row in rows] for i in (1, 2, 3)]
    retries = chart("retries")["data"]
    assert retries["datasets"][0]["data"] == [
        float(row[3].rstrip("%")) for row in tables["table-retries"][1:]
    ]
    channels = chart("channels")["data"]
    assert channels["datasets"][0]["data"] == [int(row[1]) for row in tables["table-channels"][1:]]
    buckets = chart("time-to-recovery")["data"]
    assert buckets["labels"] == [row[0] for row in tables["table-time-to-recovery"][1:]]
    assert 'src="/static/vendor/chartjs/chart.umd.min.js"' in page
    assert "cdn" not in page.lower()


def test_the_headline_shows_money_per_currency(reader, known) -> None:  # type: ignore[no-untyped-def]
    page = reader.get(f"{DASHBOARD}?{RANGE}").content.decode()
    for text in ("€430.00", "$50.00", "¥0", "€60.00", "$70.00", "60.0%", "2.1 days"):
        assert text in page, text


def test_totals_across_currencies_only_with_a_conversion(reader, known, settings) -> None:  # type: ignore[no-untyped-def]
    assert "All currencies in" not in reader.get(f"{DASHBOARD}?{RANGE}").content.decode()
    settings.REPORTING_CURRENCY = "EUR"
    settings.REPORTING_EXCHANGE_RATES = {"USD": "0.90"}
    page = reader.get(f"{DASHBOARD}?{RANGE}").content.decode()
    assert "No rate configured for JPY: no total." in page
    settings.REPORTING_EXCHANGE_RATES = {"USD": "0.90", "JPY": "0.006"}
    converted = reader.get(f"{DASHBOARD}?{RANGE}").context["converted"]
    # Recovered: 430.00 EUR + 50.00 USD × 0.90 + 0 JPY = 475.00 EUR.
    assert (converted.currency, converted.recovered_minor, converted.missing_rates) == ("EUR", 47_500, ())
    # Failed: 530 + 120 × 0.9 + 5000 × 0.006 = 668.00 EUR.
    assert converted.failed_minor == 66_800


def test_the_customer_report_shows_the_same_facts_live(reader, known) -> None:  # type: ignore[no-untyped-def]
    customer = known.customers["A"]  # cases 1 (recovered, 72 h), 2 (recovered, 12 h) and 8 (cancelled)
    response = reader.get(reverse("reporting:customer", args=[customer.pk]))
    report = response.context["report"]
    assert [
        (t.currency, t.cases, t.failed_minor, t.recovered, t.recovered_minor, t.messages_sent)
        for t in report.totals
    ] == [("EUR", 3, 19_000, 2, 15_000, 2)]
    assert report.median_hours == 42.0
    facts = {f.case_id: f for f in report.cases}
    assert facts[known.cases[1].pk].success_rank == 2
    assert facts[known.cases[8].pk].retries == 2
    assert facts[known.cases[2].pk].first_decline_code == "expired_card"


def test_the_case_report_ranks_the_retries(reader, known) -> None:  # type: ignore[no-untyped-def]
    case = known.cases[8]  # initial, initial (second failure), retry, retry
    response = reader.get(reverse("reporting:case", args=[case.pk]))
    ranks = [(a.number, a.is_retry, a.rank) for a in response.context["report"].attempts]
    assert [(number, rank if is_retry else None) for number, is_retry, rank in ranks] == [
        (1, None),
        (2, None),
        (3, 1),
        (4, 2),
    ]
    facts = response.context["report"].facts
    assert (facts.retries, facts.success_rank, facts.state) == (2, 0, "cancelled")


def test_refreshing_from_the_dashboard_catches_up_at_once(reader, known) -> None:  # type: ignore[no-untyped-def]
    from dunning.models import CaseEvent

    case = known.cases[5]
    case.state, case.closed_at = CaseState.EXHAUSTED, case.opened_at + timedelta(days=30)
    case.save()
    CaseEvent.objects.create(case=case, kind="state_changed", actor_type="system", to_state="exhausted")
    assert reader.get(f"{DASHBOARD}?{RANGE}").context["data"].headline.at_risk == 2
    response = reader.post(reverse("reporting:refresh"), {"query": RANGE}, follow=True)
    assert response.redirect_chain[-1][0] == f"{DASHBOARD}?{RANGE}"
    assert "Figures refreshed" in response.content.decode()
    assert response.context["data"].headline.at_risk == 1
    again = reader.post(reverse("reporting:refresh"), {"query": RANGE}, follow=True)
    assert "already up to date" in again.content.decode()
    assert reader.get(reverse("reporting:refresh")).status_code == 405
    odd = reader.post(reverse("reporting:refresh"), {"query": "start=2026-01-01\r\nX-Evil: 1"})
    assert odd.status_code == 302 and "\n" not in odd["Location"]
    assert odd["Location"].startswith(f"{DASHBOARD}?start=")


# Query counts: the same for N and 2N cases.


def build_cases(n: int, customer: Customer | None = None) -> Customer:
    """``n`` cases over several weeks, currencies, outcomes, channels and retries, with messages."""
    version = default_version()
    base = datetime(2026, 3, 2, 9, tzinfo=UTC)
    currencies = ["EUR", "USD", "GBP"]
    channels = ["silent_retry", "email_portal", "card_updated", "staff", "paid_outside"]
    for i in range(n):
        owner = customer or CustomerFactory(currency=currencies[i % 3], segment=["smb", "enterprise"][i % 2])
        retries = [(AttemptSource.RETRY, AttemptStatus.FAILED, "insufficient_funds")] * (i % 3)
        recovered = i % 2 == 0
        state = CaseState.RECOVERED if recovered else [CaseState.OPEN, CaseState.EXHAUSTED][i % 4 // 2]
        if recovered:
            retries = [*retries, (AttemptSource.RETRY, AttemptStatus.SUCCEEDED, "")]
        case = make_case(
            customer=owner,
            version=version,
            opened_at=base + timedelta(days=3 * i, hours=i),
            amount_minor=1_000 + i,
            first_decline="insufficient_funds",
            attempts=retries,
            state=state,
            recovered_after=timedelta(days=i % 9, hours=5) if recovered else None,
            channel=channels[i % 5] if recovered else "",
            closed_at=base + timedelta(days=3 * i + 20) if state == CaseState.EXHAUSTED else None,
        )
        sent(case, "s1")
    rollups_refresh(full=True)
    return owner


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_dashboard_query_count_does_not_grow_with_the_cases(reader) -> None:  # type: ignore[no-untyped-def]
    url = f"{DASHBOARD}?start=2026-02-26&end=2026-06-20"  # whole weeks plus days at both ends
    csv_url = reverse("reporting:csv", args=["weekly"]) + "?start=2026-02-26&end=2026-06-20"
    build_cases(6)
    few, few_csv = queries(reader, url), queries(reader, csv_url)
    build_cases(12)
    assert reader.get(url).context["data"].headline.cases == 18
    assert (queries(reader, url), queries(reader, csv_url)) == (few, few_csv)
    assert few <= 14, few


def test_the_customer_and_case_pages_query_counts_do_not_grow(reader) -> None:  # type: ignore[no-untyped-def]
    small = build_cases(4, customer=CustomerFactory(currency="EUR"))
    large = build_cases(8, customer=CustomerFactory(currency="EUR"))
    customer_counts = [queries(reader, reverse("reporting:customer", args=[c.pk])) for c in (small, large)]
    assert customer_counts[0] == customer_counts[1]
    cases = [c.dunning_cases.order_by("-id").first() for c in (small, large)]
    case_counts = [queries(reader, reverse("reporting:case", args=[c.pk])) for c in cases]
    assert case_counts[0] == case_counts[1]
