"""The RewardFn interface: a pair of pure functions, in the manner of optax.

``init(key, term_names) -> RewardState`` and
``apply(params, reward_state, transition) -> (reward [T, B], reward_state, info)``.
``params`` is a pytree of traced values (weights, ...), so a reward can be vmapped over and
differentiated in; which terms and transforms exist is static (closed over by the factory).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rlx.types import Transition

RewardState = Any
RewardParams = Any


class RewardFn(NamedTuple):
    """A reward function over stored transitions.

    init: (key, term_names) -> RewardState.
    apply: (params, reward_state, transition [T, B]) -> (reward [T, B], reward_state, info),
      where ``info`` maps names to [T, B] per-step contributions for logging.
    """

    init: Callable[[jax.Array, tuple[str, ...]], RewardState]
    apply: Callable[[RewardParams, RewardState, Transition], tuple[jax.Array, RewardState, dict]]


class EmptyState(NamedTuple):
    """State of a stateless reward."""


class UnknownTermError(ValueError):
    pass


def check_terms(requested, available: tuple[str, ...], where: str = "reward") -> None:
    """Raises ``UnknownTermError`` naming the unknown term and the env's available terms."""
    for name in requested:
        if name not in available:
            raise UnknownTermError(
                f"{where}: unknown reward term {name!r} (the env has: {', '.join(available)})"
            )


def weighted_sum(term_names: tuple[str, ...]) -> RewardFn:
    """reward = sum_i w_i * term_i over the static ``term_names``; params: {name: w_i}.

    info holds each weighted contribution ``w_i * term_i`` [T, B], keyed by term name.
    """
    term_names = tuple(term_names)

    def init(key: jax.Array, available: tuple[str, ...]) -> EmptyState:
        del key
        check_terms(term_names, tuple(available))
        return EmptyState()

    def apply(params: Mapping[str, jax.Array], state: EmptyState, transition: Transition):
        contributions = {name: params[name] * transition.terms[name] for name in term_names}
        reward = sum(contributions.values(), jnp.zeros_like(transition.primary))
        return reward, state, contributions

    return RewardFn(init=init, apply=apply)
