"""The report pages' statistics against published values: Wilson's interval and Newcombe's difference
(Newcombe 1998, "Two-sided confidence intervals for the single proportion" and "Interval estimation for
the difference between independent proportions", Statistics in Medicine 17), and the seeded bootstrap."""

from __future__ import annotations

import random
from statistics import fmean

import pytest

from reporting.stats import (
    bootstrap_mean_interval,
    newcombe_difference,
    percentile,
    wilson_interval,
    z_score,
)


def rounded(interval, digits: int = 4) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    return round(interval.low, digits), round(interval.high, digits)


def test_the_95_percent_z_score() -> None:
    assert z_score() == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize(
    ("successes", "trials", "expected"),
    [
        (81, 263, (0.2553, 0.3662)),  # Newcombe's example (a)
        (15, 148, (0.0624, 0.1605)),  # (b)
        (0, 20, (0.0, 0.1611)),  # (c)
        (1, 29, (0.0061, 0.1718)),  # (d)
        (0, 10, (0.0, 0.2775)),
        (5, 10, (0.2366, 0.7634)),
    ],
)
def test_wilson_interval_matches_published_values(successes: int, trials: int, expected) -> None:  # type: ignore[no-untyped-def]
    interval = wilson_interval(successes, trials)
    assert interval is not None
    assert interval.estimate == successes / trials
    assert rounded(interval) == expected


def test_wilson_interval_stays_inside_zero_and_one_at_the_extremes() -> None:
    none, every = wilson_interval(0, 7), wilson_interval(7, 7)
    assert none is not None and every is not None
    assert (none.low, every.high) == (0.0, 1.0)
    assert 0 < none.high < 1 and 0 < every.low < 1
    # Symmetric: k of n succeeding mirrors n − k failing.
    assert every.low == pytest.approx(1 - none.high)


def test_wilson_interval_without_trials_is_none_and_nonsense_is_refused() -> None:
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((56, 70), (48, 80), (0.0524, 0.3339)),  # Newcombe's example (a), method 10
        ((9, 10), (3, 10), (0.1705, 0.8090)),  # (b)
        ((5, 56), (0, 29), (-0.0381, 0.1926)),  # (d)
    ],
)
def test_newcombe_difference_matches_published_values(a, b, expected) -> None:  # type: ignore[no-untyped-def]
    difference = newcombe_difference(*a, *b)
    assert difference is not None
    assert difference.estimate == pytest.approx(a[0] / a[1] - b[0] / b[1])
    assert rounded(difference) == expected


def test_newcombe_difference_is_antisymmetric_and_none_with_an_empty_side() -> None:
    forward, backward = newcombe_difference(56, 70, 48, 80), newcombe_difference(48, 80, 56, 70)
    assert forward is not None and backward is not None
    assert (forward.low, forward.high) == pytest.approx((-backward.high, -backward.low))
    assert newcombe_difference(3, 10, 0, 0) is None


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert percentile([0.0, 10.0], 0.25) == 2.5
    assert percentile([7.0], 0.975) == 7.0


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = [0, 0, 4900, 0, 9900, 4900, 0, 0, 0, 2900] * 20
    first = bootstrap_mean_interval(values, seed=13, resamples=300)
    assert first == bootstrap_mean_interval(values, seed=13, resamples=300)
    assert first != bootstrap_mean_interval(values, seed=14, resamples=300)
    assert first is not None and first.estimate == fmean(values)
    assert first.low < first.estimate < first.high


def test_bootstrap_leaves_the_global_random_generator_alone() -> None:
    random.seed(1)
    expected = random.random()
    random.seed(1)
    bootstrap_mean_interval([1, 2, 3], seed=5, resamples=50)
    assert random.random() == expected


def test_bootstrap_interval_covers_the_true_mean_of_a_generated_sample() -> None:
    # Amounts recovered per retry: 30 % of retries succeed, for 10.00 to 100.00; the true mean is
    # 0.3 × 55.00 = 16.50. The interval must hold it and be about as wide as theory says (±1.96 se).
    generator = random.Random(2026)
    values = [generator.randint(1000, 10000) if generator.random() < 0.3 else 0 for _ in range(3000)]
    interval = bootstrap_mean_interval(values, seed=13, resamples=1000)
    assert interval is not None
    assert interval.contains(0.3 * 5500)
    se = (fmean(v * v for v in values) - fmean(values) ** 2) ** 0.5 / len(values) ** 0.5
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_of_nothing_is_none_and_of_a_constant_is_that_constant() -> None:
    assert bootstrap_mean_interval([], seed=1) is None
    constant = bootstrap_mean_interval([4900] * 50, seed=1, resamples=100)
    assert constant is not None
    assert (constant.estimate, constant.low, constant.high) == (4900, 4900, 4900)
    with pytest.raises(ValueError):
        bootstrap_mean_interval([1], seed=1, resamples=0)


def test_bootstrap_on_a_sample_is_rescaled_to_the_full_count() -> None:
    # A tenth of the generated retries stands for all of them: the interval is centred on the full mean
    # and as narrow as the full data's, not the sample's (about sqrt(10) times wider).
    generator = random.Random(7)
    values = [generator.randint(1000, 10000) if generator.random() < 0.3 else 0 for _ in range(20_000)]
    sample = values[::10]
    full = bootstrap_mean_interval(values, seed=13, resamples=300)
    plain = bootstrap_mean_interval(sample, seed=13, resamples=300)
    rescaled = bootstrap_mean_interval(
        sample, seed=13, resamples=300, full_size=len(values), full_mean=fmean(values)
    )
    assert full is not None and plain is not None and rescaled is not None
    assert rescaled.estimate == fmean(values)
    assert rescaled.contains(0.3 * 5500)
    assert rescaled.high - rescaled.low == pytest.approx(full.high - full.low, rel=0.2)
    assert plain.high - plain.low > 2.5 * (full.high - full.low)
    # A "sample" as large as the full set is left alone.
    assert bootstrap_mean_interval(sample, seed=13, resamples=300, full_size=len(sample)) == plain
