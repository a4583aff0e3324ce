"""The reward layer: composable, differentiable reward functions over named terms.

Combinations (``weighted_sum``, ``product``, ``geometric_mean``, ``gated``, ``gated_outcome``),
shaping (``potential_based``, ``bounded``, ``clip``, ``normalize_terms``), weight
parameterisations (``rlx.rewards.weights``), term building blocks (``rlx.rewards.terms``), and
``spec.build`` from a config's ``reward`` section. See ``rlx.rewards.base`` for the interface.
"""

from rlx.rewards import terms, weights
from rlx.rewards.base import (
    EmptyState,
    PerEnv,
    RewardFn,
    RewardTransform,
    TermTransform,
    UnknownTermError,
    chain,
    check_terms,
    for_batch,
)
from rlx.rewards.combine import gated, gated_outcome, geometric_mean, product, weighted_sum
from rlx.rewards.shaping import (
    bounded,
    clip,
    linear_potential,
    normalize_terms,
    potential_based,
    signal_potential,
)

__all__ = [
    "EmptyState",
    "PerEnv",
    "RewardFn",
    "RewardTransform",
    "TermTransform",
    "UnknownTermError",
    "bounded",
    "chain",
    "check_terms",
    "clip",
    "for_batch",
    "gated",
    "gated_outcome",
    "geometric_mean",
    "linear_potential",
    "normalize_terms",
    "potential_based",
    "product",
    "signal_potential",
    "terms",
    "weighted_sum",
    "weights",
]
