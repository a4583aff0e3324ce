"""The env protocol and the EnvState of the data contract, and the constructors envs use.

An env is a frozen dataclass (its typed config) with pure ``reset(key)`` and ``step(state,
action)`` for ONE environment; batching is ``jax.vmap`` (see ``wrappers.VmapWrapper``). Envs
report named, *unweighted* reward terms, a ``primary`` task objective and ``signals``; they never
weight or sum terms: that is the reward layer's job (``rlx.rewards``).

The types themselves (``EnvState``, ``Discrete``, ``Box``, ``ActionSpace``, ``Env``,
``observation_size``) live in the leaf module ``rlx.core.types`` and are re-exported here.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlx.core.types import ActionSpace, Box, Discrete, Env, EnvState, observation_size

Array = jax.Array

__all__ = [
    "ActionSpace",
    "Box",
    "Discrete",
    "Env",
    "EnvState",
    "make_state",
    "observation_size",
    "transition_state",
]


def make_state(
    *,
    physics: Any,
    obs: Array,
    signals: dict[str, Array],
    term_names: tuple[str, ...],
    key: Array,
) -> EnvState:
    """A fresh episode's EnvState: zero terms, not done, ``next_obs == obs`` and
    ``next_signals == signals``."""
    zero = jnp.zeros((), jnp.float32)
    return EnvState(
        physics=physics,
        obs=obs,
        next_obs=obs,
        signals=signals,
        next_signals=signals,
        terms={name: zero for name in term_names},
        primary=zero,
        terminated=jnp.zeros((), bool),
        truncated=jnp.zeros((), bool),
        step_count=jnp.zeros((), jnp.int32),
        metrics={},
        key=key,
    )


def transition_state(
    state: EnvState,
    *,
    physics: Any,
    obs: Array,
    signals: dict[str, Array],
    terms: dict[str, Array],
    primary: Array,
    terminated: Array,
    metrics: dict[str, Array] | None = None,
) -> EnvState:
    """The EnvState after one raw step (no time limit, no reset: wrappers add those).

    ``obs`` and ``signals`` describe the state the step produced; without a reset that is also
    the next step's start, so they fill both ``obs``/``next_obs`` and ``signals``/
    ``next_signals`` (``EpisodeWrapper`` replaces ``obs``/``signals`` where an episode ends).
    """
    return state.replace(
        physics=physics,
        obs=obs,
        next_obs=obs,
        signals=signals,
        next_signals=signals,
        terms={k: jnp.asarray(v, jnp.float32) for k, v in terms.items()},
        primary=jnp.asarray(primary, jnp.float32),
        terminated=jnp.asarray(terminated, bool),
        truncated=jnp.zeros((), bool),
        step_count=state.step_count + 1,
        metrics=metrics if metrics is not None else state.metrics,
    )
