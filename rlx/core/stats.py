"""Statistics every report shares: the bootstrap interval of a mean over seeds."""

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
