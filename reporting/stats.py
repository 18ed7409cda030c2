"""Small, pure statistics for the report pages: no database, no Django, standard library only.

- :func:`wilson_interval`: a confidence interval for a proportion that stays inside [0, 1] and behaves at
  0/n and n/n, where the textbook "p ± 1.96·se" interval collapses to a point (Wilson 1927; Newcombe 1998,
  method 3).
- :func:`newcombe_difference`: an interval for the difference of two independent proportions built from
  their two Wilson intervals (Newcombe 1998, method 10, the "hybrid score" interval).
- :func:`bootstrap_mean_interval`: a percentile bootstrap interval for a mean, seeded so that a page shows
  the same figures on every load.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean

CONFIDENCE = 0.95


def z_score(confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile: 1.959964… for 95 %."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (``low`` ≤ ``estimate`` ≤ ``high`` for proportions)."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def wilson_interval(successes: int, trials: int, *, confidence: float = CONFIDENCE) -> Interval | None:
    """The Wilson score interval for ``successes`` out of ``trials``; None without trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes out of {trials} trials")
    z = z_score(confidence)
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials))
    # At 0/n and n/n the bounds are exactly 0 and 1; clamping only removes float noise.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(p, low, high)


def newcombe_difference(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, *, confidence: float = CONFIDENCE
) -> Interval | None:
    """An interval for p_a − p_b (independent samples) from the two Wilson intervals; None if a side is
    empty. It keeps Wilson's good behaviour near 0 and 1, where the Wald difference interval misleads."""
    a = wilson_interval(successes_a, trials_a, confidence=confidence)
    b = wilson_interval(successes_b, trials_b, confidence=confidence)
    if a is None or b is None:
        return None
    difference = a.estimate - b.estimate
    below = math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    above = math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(difference, difference - below, difference + above)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of an already sorted sequence, interpolated linearly between ranks."""
    if not ordered:
        raise ValueError("no values")
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def bootstrap_mean_interval(
    values: Sequence[float],
    *,
    seed: int,
    resamples: int = 1000,
    confidence: float = CONFIDENCE,
    full_size: int | None = None,
    full_mean: float | None = None,
) -> Interval | None:
    """The mean of ``values`` with a percentile bootstrap interval: ``resamples`` resamples of the same
    size, drawn with replacement by a generator seeded with ``seed`` (the same input gives the same
    interval). None without values. Its cost is ``len(values) × resamples`` draws: callers cap both.

    When ``values`` are a sample of a larger set (``full_size`` values whose mean is ``full_mean``), the
    interval is centred on ``full_mean`` and its half-widths shrink by sqrt(sample / full_size): the
    m-out-of-n bootstrap's rescaling for a mean, whose spread falls as 1/sqrt(n). Without it, a capped
    sample would report the wider interval of the smaller sample.
    """
    if not values:
        return None
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    # A private generator: seeding the module-level one would change every other caller's random numbers.
    generator = random.Random(seed)
    size = len(values)
    population = list(values)
    means = sorted(fmean(generator.choices(population, k=size)) for _ in range(resamples))
    tail = (1 - confidence) / 2
    mean = fmean(population)
    low, high = percentile(means, tail), percentile(means, 1 - tail)
    if full_size is None or full_size <= size:
        return Interval(mean, low, high)
    centre = mean if full_mean is None else full_mean
    factor = math.sqrt(size / full_size)
    return Interval(centre, centre - (mean - low) * factor, centre + (high - mean) * factor)
