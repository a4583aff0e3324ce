"""The reward layer: composable, differentiable reward functions over named terms."""

from rlx.rewards.base import (
    EmptyState,
    RewardFn,
    UnknownTermError,
    check_terms,
    weighted_sum,
)

__all__ = ["EmptyState", "RewardFn", "UnknownTermError", "check_terms", "weighted_sum"]
