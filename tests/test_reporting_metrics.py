"""Every metric against the hand-built data set of tests/factories/reporting.py, worked out by hand.

Cohort (cases whose first failure is on 2026-02-26..2026-04-02): cases 1-8, 11 and 12. Recovered: 1, 2, 3,
4, 7, 11. Still at risk: 5 (open) and 12 (paused). Times to recovery: 12 h, 24 h, 30 h, 72 h, 192 h, 748 h.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from django.db import connection

from reporting import sql
from reporting.selectors import ReportFilters, dashboard
from reporting.selectors.filters import source, split_range
from reporting.services import rollups_refresh
from tests.factories.reporting import END, START, KnownData, build_known_data, default_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def known() -> KnownData:
    data = build_known_data()
    rollups_refresh(full=True)
    return data


def report(**filters: object):  # type: ignore[no-untyped-def]
    return dashboard(filters=ReportFilters(start=START, end=END, **filters))  # type: ignore[arg-type]


def test_the_range_mixes_whole_weeks_and_days_at_both_ends() -> None:
    split = split_range(START, END)
    assert (split.first_week, split.last_week) == (date(2026, 3, 2), date(2026, 3, 23))
    assert [(a.date(), b.date()) for a, b in split.edges] == [
        (date(2026, 2, 26), date(2026, 3, 2)),
        (date(2026, 3, 30), date(2026, 4, 3)),
    ]


def test_recovery_rate_by_count_and_by_value_per_currency(known: KnownData) -> None:
    headline = report().headline
    assert (headline.cases, headline.recovered, headline.at_risk) == (10, 6, 2)
    assert headline.recovery_rate == 60.0
    figures = {f.currency: f for f in headline.by_currency}
    assert list(figures) == ["EUR", "JPY", "USD"]  # never added up across currencies
    eur, jpy, usd = figures["EUR"], figures["JPY"], figures["USD"]
    # EUR: cases 1, 2, 3, 7, 8, 12; recovered 1, 2, 3, 7.
    assert (eur.cases, eur.failed_minor, eur.recovered, eur.recovered_minor) == (6, 53_000, 4, 43_000)
    assert eur.recovery_rate_by_value == 81.1
    # USD: cases 4, 5, 11; recovered 4 and 11.
    assert (usd.cases, usd.failed_minor, usd.recovered, usd.recovered_minor) == (3, 12_000, 2, 5_000)
    assert usd.recovery_rate_by_value == 41.7
    assert (jpy.cases, jpy.failed_minor, jpy.recovered_minor, jpy.recovery_rate_by_value) == (
        1,
        5_000,
        0,
        0.0,
    )


def test_revenue_at_risk_is_what_open_and_paused_cases_still_owe(known: KnownData) -> None:
    figures = {f.currency: (f.at_risk, f.at_risk_minor) for f in report().headline.by_currency}
    assert figures == {"EUR": (1, 6_000), "JPY": (0, 0), "USD": (1, 7_000)}


def test_time_to_recovery_median_and_distribution(known: KnownData) -> None:
    data = report()
    # 12, 24, 30, 72, 192, 748 hours: the median is (30 + 72) / 2 = 51 hours.
    assert data.headline.median_hours == 51.0
    assert data.headline.median_days == 2.1
    assert [(row.label, row.recovered) for row in data.time_to_recovery] == [
        ("0–1 days", 3),  # 12 h, 24 h, 30 h
        ("2–3 days", 1),  # exactly 72 h
        ("4–7 days", 0),
        ("8–14 days", 1),  # 192 h
        ("15–30 days", 0),
        ("30+ days", 1),  # 31 days and 4 hours
    ]


def test_involuntary_churn_counts_customers_whose_dunning_ended_in_the_period(known: KnownData) -> None:
    churn = report().headline.churn
    # Cases 6 (D, exhausted), 8 (A, cancelled) and 9 (G: opened before the period, exhausted in it).
    # Active: A, B, C, E, G; D and F are cancelled.
    assert (churn.customers_lost, churn.active_customers, churn.rate) == (3, 5, 60.0)
    eur = report(currency="EUR").headline.churn
    # Case 8 only; EUR customers not cancelled: A and B.
    assert (eur.customers_lost, eur.active_customers, eur.rate) == (1, 2, 50.0)


def test_retry_success_ranks_the_retries_of_each_invoice(known: KnownData) -> None:
    rows = [(row.label, row.attempts, row.succeeded, row.success_rate) for row in report().retries]
    # Retries with a result per case: 1 (failed, succeeded), 2 (succeeded), 3 (failed, failed, succeeded),
    # 4 (failed), 7 (succeeded), 8 (failed, failed: the second initial failure is not a retry), 11
    # (succeeded). Case 5's retry is still pending.
    assert rows == [
        ("1st retry", 7, 3, 42.9),
        ("2nd retry", 3, 1, 33.3),
        ("3rd retry", 1, 1, 100.0),
    ]


def test_recovery_by_channel_with_amounts_per_currency(known: KnownData) -> None:
    data = report()
    assert [(row.key, row.recovered) for row in data.channels] == [
        ("silent_retry", 1),
        ("email_portal", 1),
        ("banner_portal", 1),
        ("portal", 0),
        ("card_updated", 1),
        ("staff", 1),
        ("paid_outside", 1),
    ]
    amounts = {f.currency: {k: v for k, v in f.channel_minor.items() if v} for f in data.headline.by_currency}
    assert amounts == {
        "EUR": {"silent_retry": 10_000, "email_portal": 20_000, "card_updated": 5_000, "staff": 8_000},
        "JPY": {},
        "USD": {"banner_portal": 2_000, "paid_outside": 3_000},
    }


def test_volume_and_recovery_by_first_decline(known: KnownData) -> None:
    rows = [(r.category, r.code, r.cases, r.recovered, r.recovery_rate) for r in report().declines]
    assert rows == [
        ("soft", "insufficient_funds", 5, 4, 80.0),
        ("authentication_required", "authentication_required", 1, 0, 0.0),
        ("fraud", "fraudulent", 1, 0, 0.0),
        ("hard", "expired_card", 1, 1, 100.0),
        ("processing", "processing_error", 1, 0, 0.0),
        ("soft", "do_not_honor", 1, 1, 100.0),  # case 3: its latest decline was hard
    ]


def test_weekly_trend_by_week_of_failure(known: KnownData) -> None:
    weeks = report().weeks
    assert [(w.week_start.isoformat(), w.failed, w.recovered, w.at_risk) for w in weeks] == [
        ("2026-02-23", 1, 1, 0),  # case 11
        ("2026-03-02", 2, 2, 0),  # 1, 2
        ("2026-03-09", 1, 1, 0),  # 3
        ("2026-03-16", 2, 1, 1),  # 4, 5
        ("2026-03-23", 3, 1, 0),  # 6, 7, 8
        ("2026-03-30", 1, 0, 1),  # 12
    ]
    assert weeks[3].by_currency == {"USD": (10_000, 3_000, 7_000)}
    assert weeks[4].by_currency == {"EUR": (12_000, 8_000, 0), "JPY": (5_000, 0, 0)}


def test_policy_comparison_per_version(known: KnownData) -> None:
    rows = [
        (
            r.policy,
            r.version,
            r.cases,
            r.recovered,
            r.recovery_rate,
            r.median_days,
            r.messages_sent,
            r.messages_per_recovery,
        )
        for r in report().policies
    ]
    assert rows == [
        # Cases 1, 4, 5, 6, 7, 11: recovered after 72, 192, 24 and 30 hours; 2 + 1 messages.
        ("Default", default_version().number, 6, 4, 66.7, 2.1, 3, 0.8),
        ("Gentle", 1, 2, 1, 50.0, 0.5, 0, 0.0),  # cases 2 and 8
        ("Gentle", 2, 2, 1, 50.0, 31.2, 3, 3.0),  # cases 3 and 12: a staff alert is no customer message
    ]


@pytest.mark.parametrize(
    ("filters", "expected_cases", "expected_recovered"),
    [
        ({"currency": "USD"}, {4, 5, 11}, 2),
        ({"segment": "enterprise"}, {3, 7, 12}, 2),
        ({"segment": "-"}, {6}, 0),  # customers without a segment
        ({"segment": "smb", "currency": "EUR"}, {1, 2, 8}, 2),
        ({"policy_id": "gentle"}, {2, 3, 8, 12}, 2),
        ({"policy_id": "gentle", "version_id": "gentle2"}, {3, 12}, 1),
        ({"decline_category": "soft"}, {1, 3, 4, 7, 8, 11}, 5),  # the first decline, not the latest
        ({"decline_category": "hard"}, {2}, 1),
        ({"start": date(2026, 3, 2), "end": date(2026, 3, 8)}, {1, 2}, 2),
        ({"start": date(2026, 2, 1), "end": date(2026, 4, 30)}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 6),
    ],
)
def test_filters_narrow_every_figure_to_the_same_cases(
    known: KnownData, filters: dict[str, object], expected_cases: set[int], expected_recovered: int
) -> None:
    values = dict(filters)
    if values.get("policy_id") == "gentle":
        values["policy_id"] = known.versions["gentle1"].policy_id
    if values.get("version_id") == "gentle2":
        values["version_id"] = known.versions["gentle2"].pk
    values.setdefault("start", START)
    values.setdefault("end", END)
    data = dashboard(filters=ReportFilters(**values))  # type: ignore[arg-type]
    expected = [known.cases[n] for n in expected_cases]
    assert data.headline.cases == len(expected)
    assert data.headline.recovered == expected_recovered
    assert sum(w.failed for w in data.weeks) == len(expected)
    assert sum(r.cases for r in data.declines) == len(expected)
    assert sum(r.cases for r in data.policies) == len(expected)
    assert sum(row.recovered for row in data.channels) == expected_recovered
    assert sum(row.recovered for row in data.time_to_recovery) == expected_recovered
    by_currency: dict[str, int] = {}
    for case in expected:
        by_currency[case.currency] = by_currency.get(case.currency, 0) + case.amount_minor
    assert {f.currency: f.failed_minor for f in data.headline.by_currency} == by_currency


def _from_facts_only(filters: ReportFilters) -> dict[str, int]:
    """The reference: every measure straight from the case facts, no rollup involved."""
    conditions, params = filters.dimension_conditions("f")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {sql.measure_sums()} FROM (SELECT {sql.fact_measures()} FROM {sql.FACT} f "
            f"WHERE f.opened_at >= %s AND f.opened_at < %s{conditions}) s",
            [sql.param(filters.start_at), sql.param(filters.end_before), *params],
        )
        return dict(zip(sql.MEASURE_COLUMNS, (int(v or 0) for v in cursor.fetchone()), strict=True))


def _from_source(filters: ReportFilters) -> dict[str, int]:
    rows_from, params = source(filters)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql.measure_sums()} FROM ({rows_from}) s", params)
        return dict(zip(sql.MEASURE_COLUMNS, (int(v or 0) for v in cursor.fetchone()), strict=True))


def test_whole_weeks_from_the_rollup_plus_edge_days_from_the_facts_equal_the_facts(known: KnownData) -> None:
    # Every start and end weekday, ranges shorter than a week, exactly whole weeks, and longer ones.
    starts = [date(2026, 2, 20) + timedelta(days=n) for n in range(0, 16, 3)]
    lengths = [0, 3, 6, 7, 13, 27, 40]
    for start, length in itertools.product(starts, lengths):
        filters = ReportFilters(start=start, end=start + timedelta(days=length))
        assert _from_source(filters) == _from_facts_only(filters), filters
    gentle = known.versions["gentle2"]
    for filters in (
        ReportFilters(start=START, end=END, segment="smb", decline_category="soft"),  # the weekly rollup
        ReportFilters(start=START, end=END, currency="EUR"),  # the weekly totals
        ReportFilters(start=START, end=END, policy_id=gentle.policy_id, version_id=gentle.pk),
    ):
        assert _from_source(filters) == _from_facts_only(filters), filters


def test_reports_without_segment_or_decline_filters_read_the_small_weekly_totals() -> None:
    plain = source(ReportFilters(start=START, end=END, currency="EUR", policy_id=1))[0]
    assert sql.TOTALS in plain and f"FROM {sql.ROLLUP} " not in plain
    for filters in ({"segment": "smb"}, {"decline_category": "soft"}):
        assert f"FROM {sql.ROLLUP} " in source(ReportFilters(start=START, end=END, **filters))[0]
    assert f"FROM {sql.ROLLUP} " in source(ReportFilters(start=START, end=END), by_decline=True)[0]


def test_an_incremental_refresh_ends_where_a_full_rebuild_does(known: KnownData) -> None:
    from dunning.models import CaseState

    case = known.cases[5]
    case.state = CaseState.EXHAUSTED
    case.closed_at = case.opened_at + timedelta(days=20)
    case.save()
    from dunning.models import CaseEvent

    CaseEvent.objects.create(case=case, kind="state_changed", actor_type="system", to_state="exhausted")
    result = rollups_refresh()
    assert not result.skipped and not result.full
    incremental = report()
    rollups_refresh(full=True)
    assert report() == incremental
    assert incremental.headline.at_risk == 1
