from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dunning.timing import (
    FEATURES,
    PaydayPattern,
    RawFeatures,
    RetryContext,
    TimingModel,
    amount_band,
    choose_slot,
    choose_slot_cached,
    level,
    levels,
    raw_features_at,
)
from dunning.timing.model import CODE_MIN_ATTEMPTS, scale_odds
from dunning.timing.priors import (
    BASE_PRIOR_STRENGTH,
    LEVEL_PRIOR_STRENGTH,
    MULTIPLIERS,
    prior_base,
    prior_multiplier,
)

NEW_YORK = ZoneInfo("America/New_York")


def make_context(**changes: Any) -> RetryContext:
    ctx = RetryContext(
        decline_code="insufficient_funds",
        decline_category="soft",
        retry_number=2,
        funding="debit",
        brand="visa",
        amount_minor=2_999,
        exponent=2,
        segment="smb",
        country="US",
        time_zone="America/New_York",
        last_failure_at=datetime(2026, 1, 5, 15, 30, tzinfo=UTC),
        payday=None,
    )
    return replace(ctx, **changes)


def local(year: int, month: int, day: int, hour: int, zone: ZoneInfo = NEW_YORK) -> datetime:
    return datetime(year, month, day, hour, tzinfo=zone).astimezone(UTC)


def uniform_counts(code: str, attempts: int, rate: float) -> dict[tuple[str, str, str], tuple[int, int]]:
    """Counts where every level of every feature has the same success rate."""
    counts: dict[tuple[str, str, str], tuple[int, int]] = {(code, "", ""): (attempts, round(attempts * rate))}
    for feature in FEATURES:
        for level_name in _all_levels(feature):
            counts[(code, feature, level_name)] = (attempts, round(attempts * rate))
    return counts


def _all_levels(feature: str) -> set[str]:
    samples: dict[str, list[object]] = {
        "weekday": list(range(7)),
        "hour": list(range(24)),
        "day_of_month": list(range(1, 32)),
        "payday_days": [None, *range(40)],
        "hours_since_failure": [None, *range(0, 400, 3)],
        "retry_number": list(range(1, 8)),
        "funding": ["credit", "debit", "prepaid", ""],
        "brand": ["visa"],
        "amount_band": list(range(6)),
        "segment": ["smb"],
        "country": ["US"],
    }
    return {level(feature, raw) for raw in samples[feature]}


# Features and levels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "raw", "expected"),
    [
        ("hour", 9, "09-12"),
        ("hour", 23, "21-24"),
        ("hour", "7", "06-09"),
        ("hours_since_failure", 30, "1-3d"),
        ("hours_since_failure", 5, "<6h"),
        ("hours_since_failure", 200, "7d+"),
        ("hours_since_failure", None, "unknown"),
        ("payday_days", None, "unknown"),
        ("payday_days", 1, "1"),
        ("payday_days", 5, "3-6"),
        ("payday_days", 20, "14+"),
        ("day_of_month", 15, "15"),
        ("weekday", 4, "fri"),
        ("retry_number", 6, "4+"),
        ("funding", "DEBIT", "debit"),
        ("funding", "charge", "unknown"),
        ("brand", "Visa", "visa"),
        ("brand", "", "unknown"),
        ("segment", "", "unknown"),
        ("country", "fr", "FR"),
        ("country", "", "unknown"),
        ("amount_band", 3, "3"),
    ],
)
def test_level_buckets_raw_values(feature: str, raw: object, expected: str) -> None:
    assert level(feature, raw) == expected


def test_unknown_feature_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        level("moon_phase", 1)


@pytest.mark.parametrize(
    ("amount_minor", "exponent", "band"),
    [
        (999, 2, 0),
        (1_000, 2, 1),
        (4_999, 2, 1),
        (19_999, 2, 2),
        (99_999, 2, 3),
        (499_999, 2, 4),
        (500_000, 2, 5),
    ],
)
def test_amount_band_uses_major_units(amount_minor: int, exponent: int, band: int) -> None:
    assert amount_band(amount_minor, exponent) == band


def test_amount_band_for_zero_decimal_currency() -> None:
    assert amount_band(9, 0) == 0
    assert amount_band(999, 0) == 3
    assert amount_band(1_500, 0) == 4  # 1,500 yen


def test_raw_features_are_local_to_the_customer() -> None:
    ctx = make_context(time_zone="Asia/Kolkata", country="IN")
    raw = raw_features_at(ctx, datetime(2026, 1, 16, 20, 0, tzinfo=UTC))  # 01:30 on the 17th in Kolkata
    assert (raw.weekday, raw.hour, raw.day_of_month) == (5, 1, 17)
    assert raw.payday_days is None  # no detected pattern and no default for India
    assert (
        raw.hours_since_failure == (datetime(2026, 1, 16, 20, tzinfo=UTC) - ctx.last_failure_at).days * 24 + 4
    )
    assert levels(raw)["weekday"] == "sat"


def test_raw_features_use_the_country_default_payday() -> None:
    raw = raw_features_at(make_context(), local(2026, 1, 16, 9))
    assert raw.payday_days == 1  # the day after the 15th
    detected = PaydayPattern("monthly", (10,), None, 0.9, 8)
    assert raw_features_at(make_context(payday=detected), local(2026, 1, 16, 9)).payday_days == 6


def test_levels_cover_every_feature() -> None:
    raw = RawFeatures(2, 10, 3, None, 50, 1, "credit", "", 2, "", "")
    assert levels(raw) == {
        "weekday": "wed",
        "hour": "09-12",
        "day_of_month": "3",
        "payday_days": "unknown",
        "hours_since_failure": "1-3d",
        "retry_number": "1",
        "funding": "credit",
        "brand": "unknown",
        "amount_band": "2",
        "segment": "unknown",
        "country": "unknown",
    }


# Shrinkage and fallback ------------------------------------------------------------------------------------


def test_without_data_every_level_is_its_prior() -> None:
    ctx = make_context()
    estimate = TimingModel.empty().estimate(ctx, local(2026, 1, 16, 9))
    base = prior_base("insufficient_funds", "soft")
    assert estimate.attempts == 0
    for part in estimate.parts:
        multiplier = prior_multiplier("insufficient_funds", "soft", part.feature, part.level)
        assert part.p == pytest.approx(scale_odds(base, multiplier))
        assert (part.attempts, part.successes) == (0, 0)


def test_lots_of_data_overrides_the_prior() -> None:
    model = TimingModel(
        uniform_counts("insufficient_funds", 200_000, 0.42), categories={"insufficient_funds": "soft"}
    )
    estimate = model.estimate(make_context(), local(2026, 1, 16, 9))
    assert estimate.p == pytest.approx(0.42, abs=0.005)
    assert estimate.attempts == 200_000


def test_a_level_is_shrunk_toward_its_prior_by_the_prior_strength() -> None:
    counts = {
        ("generic_decline", "", ""): (10_000, 2_000),
        ("generic_decline", "hour", "09-12"): (30, 30),  # thin and extreme
        ("generic_decline", "hour", "12-15"): (9_970, 1_970),
    }
    model = TimingModel(counts, categories={"generic_decline": "soft"})
    ctx = make_context(decline_code="generic_decline")
    part = next(p for p in model.estimate(ctx, local(2026, 1, 13, 10)).parts if p.feature == "hour")

    def shrink(successes: int, attempts: int, prior: float) -> float:
        return (successes + BASE_PRIOR_STRENGTH * prior) / (attempts + BASE_PRIOR_STRENGTH)

    # Category toward the prior, code toward the category, the hour feature's base toward the code.
    category_p = shrink(2_000, 10_000, prior_base("generic_decline", "soft"))
    feature_p = shrink(2_000, 10_000, shrink(2_000, 10_000, category_p))
    centre = scale_odds(feature_p, prior_multiplier("generic_decline", "soft", "hour", "09-12"))
    assert part.p == pytest.approx((30 + LEVEL_PRIOR_STRENGTH * centre) / (30 + LEVEL_PRIOR_STRENGTH))
    assert 0.1 < part.p < 0.7  # 30 of 30 is far from certainty with the pseudo-attempts behind the prior


def test_thin_code_falls_back_to_its_category() -> None:
    counts = uniform_counts("generic_decline", 5_000, 0.2)
    counts[("generic_decline", "hour", "09-12")] = (5_000, 2_000)  # mornings do much better
    counts[("call_issuer", "", "")] = (20, 2)
    counts[("call_issuer", "hour", "09-12")] = (20, 0)
    categories = {"generic_decline": "soft", "call_issuer": "soft"}
    model = TimingModel(counts, categories=categories)
    ctx = make_context(decline_code="call_issuer")

    estimate = model.estimate(ctx, local(2026, 1, 13, 10))

    hour = next(p for p in estimate.parts if p.feature == "hour")
    assert estimate.attempts == 5_020  # the category's attempts, not the code's 20
    assert (hour.attempts, hour.successes) == (5_020, 2_000)  # summed over the category's codes
    assert hour.contribution > 0


def test_code_with_enough_attempts_uses_its_own_counts() -> None:
    counts = uniform_counts("generic_decline", 5_000, 0.2)
    counts[("call_issuer", "", "")] = (CODE_MIN_ATTEMPTS, 40)
    counts[("call_issuer", "hour", "09-12")] = (CODE_MIN_ATTEMPTS, 40)
    model = TimingModel(counts, categories={"generic_decline": "soft", "call_issuer": "soft"})

    estimate = model.estimate(make_context(decline_code="call_issuer"), local(2026, 1, 13, 10))

    hour = next(p for p in estimate.parts if p.feature == "hour")
    assert estimate.attempts == CODE_MIN_ATTEMPTS
    assert hour.attempts == CODE_MIN_ATTEMPTS


def test_from_raw_counts_buckets_raw_values_and_sums_categories() -> None:
    rows = [
        ("insufficient_funds", "soft", "", None, 100, 20),
        ("insufficient_funds", "soft", "hour", 9, 30, 9),
        ("insufficient_funds", "soft", "hour", 10, 20, 4),
        ("insufficient_funds", "soft", "hour", "11", 5, 1),
        ("insufficient_funds", "soft", "payday_days", None, 40, 5),
        ("insufficient_funds", "soft", "hours_since_failure", 30, 12, 3),
        ("card_velocity_exceeded", "soft", "", None, 10, 1),
        ("card_velocity_exceeded", "soft", "hour", 9, 10, 1),
    ]
    model = TimingModel.from_raw_counts(rows, built_at=datetime(2026, 1, 1, tzinfo=UTC))

    assert model.counts[("insufficient_funds", "hour", "09-12")] == (55, 14)
    assert model.counts[("insufficient_funds", "payday_days", "unknown")] == (40, 5)
    assert model.counts[("insufficient_funds", "hours_since_failure", "1-3d")] == (12, 3)
    assert model.counts[("insufficient_funds", "", "")] == (100, 20)
    assert model.categories == {"insufficient_funds": "soft", "card_velocity_exceeded": "soft"}
    thin = model.estimate(make_context(decline_code="card_velocity_exceeded"), local(2026, 1, 13, 10))
    assert thin.attempts == 110  # category totals, summed over both codes
    hour = next(p for p in thin.parts if p.feature == "hour")
    assert (hour.attempts, hour.successes) == (65, 15)


def test_json_round_trip_keeps_counts_and_estimates() -> None:
    rows = [
        ("insufficient_funds", "soft", "", None, 300, 60),
        ("insufficient_funds", "soft", "weekday", 4, 100, 30),
        ("processing_error", "processing", "", None, 50, 25),
    ]
    model = TimingModel.from_raw_counts(rows, built_at=datetime(2026, 1, 1, 3, tzinfo=UTC))
    data = json.loads(json.dumps(model.to_json()))

    again = TimingModel.from_json(data)

    assert again.counts == model.counts
    assert again.categories == model.categories
    assert again.built_at == model.built_at
    at = local(2026, 1, 16, 9)
    assert again.estimate(make_context(), at) == model.estimate(make_context(), at)
    with pytest.raises(ValueError, match="version"):
        TimingModel.from_json({"version": 99})


# Priors point the documented way --------------------------------------------------------------------------


def test_insufficient_funds_do_better_after_payday_than_before() -> None:
    model = TimingModel.empty()
    ctx = make_context(last_failure_at=local(2026, 1, 10, 9))
    after = model.estimate(ctx, local(2026, 1, 16, 9)).p  # the day after the 15th, a Friday
    before = model.estimate(ctx, local(2026, 1, 14, 9)).p  # 13 days after the 1st, a Wednesday
    assert after > before
    # The same holds on equal weekdays: the 16th of January and the 13th of February 2026 are both Fridays.
    ctx = replace(ctx, last_failure_at=local(2026, 2, 10, 9))
    after_payday = model.estimate(ctx, local(2026, 2, 16, 9)).p
    two_days_before = model.estimate(ctx, local(2026, 2, 13, 9)).p
    assert after_payday > two_days_before


def test_generic_declines_do_worse_on_friday_evening_than_tuesday_morning() -> None:
    model = TimingModel.empty()
    ctx = make_context(decline_code="generic_decline", last_failure_at=local(2026, 1, 10, 9))
    friday_evening = model.estimate(ctx, local(2026, 1, 16, 19)).p
    tuesday_morning = model.estimate(ctx, local(2026, 1, 13, 10)).p
    assert friday_evening < tuesday_morning


def test_processing_errors_do_better_within_hours_than_days_later() -> None:
    model = TimingModel.empty()
    failed = local(2026, 1, 13, 7)
    ctx = make_context(decline_code="processing_error", decline_category="processing", last_failure_at=failed)
    within_hours = model.estimate(ctx, failed + timedelta(hours=3)).p
    a_week_later = model.estimate(ctx, failed + timedelta(days=7, hours=3)).p
    assert within_hours > a_week_later


def test_hard_declines_have_a_tiny_base_and_no_timing_effects() -> None:
    assert prior_base("expired_card", "hard") < 0.05
    assert prior_base("fraudulent", "fraud") < 0.05
    assert prior_multiplier("insufficient_funds", "authentication_required", "payday_days", "1") == 1.0
    assert MULTIPLIERS["no_retry"] == {}


# Choosing a slot and explaining it -------------------------------------------------------------------------


def test_choose_slot_prefers_the_day_after_payday_and_explains_it() -> None:
    ctx = make_context(last_failure_at=local(2026, 1, 13, 10))
    choice = choose_slot(
        TimingModel.empty(),
        ctx,
        window_start=local(2026, 1, 14, 0),
        window_end=local(2026, 1, 17, 0),
        fixed_at=local(2026, 1, 14, 10),
    )

    assert choice.at.astimezone(NEW_YORK).date() == date(2026, 1, 16)
    assert choice.at.astimezone(NEW_YORK).minute == 0
    text = choice.explain(ctx)
    assert text == choice.explanation
    assert text.startswith("Fri 16 Jan ")
    assert "local: day after the 15th (usual payday in US)" in text
    assert "insufficient_funds, debit, retry 2:" in text
    assert "n=0, built-in priors only" in text
    assert text.endswith("at the fixed slot")
    assert choice.fixed_estimate is not None
    assert choice.estimate.p > choice.fixed_estimate.p
    assert len(choice.runner_ups) == 3
    assert all(p <= choice.estimate.p for _at, p in choice.runner_ups)


def test_explanation_counts_attempts_and_names_a_detected_payday() -> None:
    counts = uniform_counts("insufficient_funds", 1_204, 0.3)
    model = TimingModel(counts, categories={"insufficient_funds": "soft"})
    ctx = make_context(
        payday=PaydayPattern("monthly", (20,), None, 0.9, 9), last_failure_at=local(2026, 1, 13, 10)
    )
    choice = choose_slot(model, ctx, window_start=local(2026, 1, 18, 0), window_end=local(2026, 1, 22, 0))

    assert "(n=1,204)" in choice.explanation
    assert "the 20th (customer's payday)" in choice.explanation
    assert "fixed slot" not in choice.explanation


def test_slot_choice_json_is_serialisable() -> None:
    ctx = make_context(last_failure_at=local(2026, 1, 13, 10))
    choice = choose_slot(
        TimingModel.empty(),
        ctx,
        window_start=local(2026, 1, 14, 0),
        window_end=local(2026, 1, 17, 0),
        fixed_at=local(2026, 1, 14, 10),
    )
    data = json.loads(json.dumps(choice.to_json()))
    assert data["at"] == choice.at.isoformat()
    assert data["fixed_at"] == local(2026, 1, 14, 10).isoformat()
    assert data["explanation"] == choice.explanation
    assert {part["feature"] for part in data["parts"]} == set(FEATURES)
    assert len(data["runner_ups"]) == 3
    assert 0 < data["p"] < 1 and 0 < data["fixed_p"] < 1


def test_ties_go_to_the_earliest_slot() -> None:
    # A hard decline has no timing effects: every candidate scores the same.
    ctx = make_context(decline_code="expired_card", decline_category="hard", country="", payday=None)
    start = local(2026, 1, 13, 0)
    choice = choose_slot(TimingModel.empty(), ctx, window_start=start, window_end=start + timedelta(days=2))
    assert choice.at == local(2026, 1, 13, 7)
    assert "no time stands out" in choice.explanation


def test_without_candidates_the_earliest_allowed_moment_is_used() -> None:
    ctx = make_context()
    start = local(2026, 1, 13, 7) + timedelta(minutes=10)
    choice = choose_slot(
        TimingModel.empty(),
        ctx,
        window_start=start,
        window_end=start + timedelta(minutes=30),
        not_before=start + timedelta(minutes=5),
    )
    assert choice.at == start + timedelta(minutes=5)
    assert choice.runner_ups == ()
    late = choose_slot(
        TimingModel.empty(),
        ctx,
        window_start=start,
        window_end=start + timedelta(minutes=30),
        not_before=start + timedelta(days=1),
    )
    assert late.at == start + timedelta(minutes=30)


def test_naive_or_reversed_windows_are_refused() -> None:
    ctx = make_context()
    with pytest.raises(ValueError, match="aware"):
        choose_slot(
            TimingModel.empty(), ctx, window_start=datetime(2026, 1, 1), window_end=datetime(2026, 1, 2)
        )
    with pytest.raises(ValueError, match="fixed_at must be an aware"):
        choose_slot(
            TimingModel.empty(),
            ctx,
            window_start=local(2026, 1, 1, 0),
            window_end=local(2026, 1, 2, 0),
            fixed_at=datetime(2026, 1, 1, 9),
        )
    with pytest.raises(ValueError, match="before"):
        choose_slot(
            TimingModel.empty(), ctx, window_start=local(2026, 1, 2, 0), window_end=local(2026, 1, 1, 0)
        )


def test_cached_choice_matches_the_uncached_one() -> None:
    model = TimingModel.empty()
    ctx = make_context(last_failure_at=local(2026, 1, 13, 10) + timedelta(minutes=17))
    window = {"window_start": local(2026, 1, 13, 12), "window_end": local(2026, 1, 16, 12)}
    cached = choose_slot_cached(model, ctx, **window)
    assert cached.at == choose_slot(model, ctx, **window).at
    assert cached.estimate == choose_slot(model, ctx, **window).estimate
    assert choose_slot_cached(model, ctx, **window) is cached


def test_an_unknown_time_zone_falls_back_to_utc() -> None:
    ctx = make_context(time_zone="Mars/Olympus_Mons")
    raw = raw_features_at(ctx, datetime(2026, 1, 16, 9, 0, tzinfo=UTC))
    assert (raw.hour, raw.day_of_month) == (9, 16)
    choice = choose_slot(
        TimingModel.empty(), ctx, window_start=local(2026, 1, 14, 0), window_end=local(2026, 1, 16, 0)
    )
    assert choice.at.hour in (7, 9, 11, 13, 15, 17, 19)


def test_without_evidence_between_hours_a_slot_keeps_the_fixed_slots_hour() -> None:
    """Insufficient funds has no hour prior: all hours of a day tie, and the tie goes to the policy's hour
    (09:00), not the earliest candidate (07:00)."""
    from datetime import UTC, datetime

    from dunning.timing.features import RetryContext
    from dunning.timing.model import TimingModel, choose_slot

    context = RetryContext(
        decline_code="insufficient_funds",
        decline_category="soft",
        retry_number=1,
        funding="debit",
        brand="visa",
        amount_minor=4900,
        exponent=2,
        segment="",
        country="",
        time_zone="UTC",
        last_failure_at=datetime(2026, 3, 1, 12, tzinfo=UTC),  # every candidate is 1-3 days after it
        payday=None,
    )
    start = datetime(2026, 3, 3, 0, tzinfo=UTC)
    fixed = datetime(2026, 3, 3, 9, tzinfo=UTC)
    choice = choose_slot(
        TimingModel.empty(), context, window_start=start, window_end=start.replace(hour=23), fixed_at=fixed
    )
    assert choice.at == fixed
    earliest = choose_slot(
        TimingModel.empty(), context, window_start=start, window_end=start.replace(hour=23)
    )
    assert earliest.at.hour == 7
