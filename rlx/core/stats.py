"""Statistics every report shares: bootstrap intervals of a mean, and of a ratio of means,
over seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], n: int = 10_000, seed: int = 0) -> list[float]:
    """95% bootstrap CI of the mean of ``values`` [N] (resampled ``n`` times with
    ``np.random.default_rng(seed)``): [low, high]; the value itself twice for one value."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n, len(values))).mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def ratio_ci(
    values: Sequence[float], reference: Sequence[float], n: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap CI of ``mean(values) / mean(reference)`` ([N] and [M]), each resampled
    over its own seeds with one ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    values_a, reference_a = np.asarray(values, float), np.asarray(reference, float)
    num = rng.choice(values_a, (n, len(values_a))).mean(axis=1)
    den = rng.choice(reference_a, (n, len(reference_a))).mean(axis=1)
    ratios = num / den
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))
