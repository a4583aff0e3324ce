"""The env protocol and the EnvState of the data contract.

An env is a frozen dataclass (its typed config) with pure ``reset(key)`` and ``step(state,
action)`` for ONE environment; batching is ``jax.vmap`` (see ``wrappers.VmapWrapper``). Envs
report named, *unweighted* reward terms, a ``primary`` task objective and ``signals``; they never
weight or sum terms: that is the reward layer's job (``rlx.rewards``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array


@struct.dataclass
class EnvState:
    """State of one environment after a step (leading ``[B]`` axis once batched).

    Fields:
      physics: env-specific pytree the dynamics evolve (post-reset after auto-reset).
      obs: [obs_size] observation after this step, *after* auto-reset.
      next_obs: [obs_size] observation this step produced, *before* auto-reset.
      obs_signals: dict of [] signals at the state ``obs`` describes (post-reset).
      signals: dict of [] signals at the pre-reset next state (pairs with ``next_obs``).
      terms: dict of [] unweighted reward terms of this transition.
      primary: [] the task objective of this step.
      terminated: [] bool, a true terminal state (no bootstrap, zero potential).
      truncated: [] bool, the time limit ended the episode (bootstrap from ``next_obs``).
      step_count: [] int32 steps taken in the current episode (0 right after a reset).
      metrics: dict of [] env diagnostics.
      key: PRNG key the env consumes on reset.
      reset_cache: (physics, obs, obs_signals) of the episode's first state when the
        ``EpisodeWrapper`` resets to a cached state (``reset_mode='cached'``), else None.
    """

    physics: Any
    obs: Array
    next_obs: Array
    obs_signals: dict[str, Array]
    signals: dict[str, Array]
    terms: dict[str, Array]
    primary: Array
    terminated: Array
    truncated: Array
    step_count: Array
    metrics: dict[str, Array]
    key: Array
    reset_cache: Any = None

    @property
    def done(self) -> Array:
        return jnp.logical_or(self.terminated, self.truncated)


@dataclasses.dataclass(frozen=True)
class Discrete:
    """``num_actions`` choices; the env takes an int32 action."""

    num_actions: int


@dataclasses.dataclass(frozen=True)
class Box:
    """A continuous action in ``[low, high]^size``; the env takes a float32 [size] action."""

    size: int
    low: float = -1.0
    high: float = 1.0


ActionSpace = Discrete | Box


class Env(Protocol):
    """What every env (raw or wrapped) offers."""

    name: str
    episode_length: int

    @property
    def action_space(self) -> ActionSpace: ...

    @property
    def term_names(self) -> tuple[str, ...]: ...

    @property
    def signal_names(self) -> tuple[str, ...]: ...

    def reset(self, key: Array) -> EnvState: ...

    def step(self, state: EnvState, action: Array) -> EnvState: ...


def observation_size(env: Env) -> int:
    """Observation size from shapes alone (``jax.eval_shape``), never a real reset."""
    shape = jax.eval_shape(env.reset, jax.random.key(0)).obs.shape
    return int(shape[-1])


def make_state(
    *,
    physics: Any,
    obs: Array,
    signals: dict[str, Array],
    term_names: tuple[str, ...],
    key: Array,
) -> EnvState:
    """A fresh episode's EnvState: zero terms, not done, ``next_obs == obs``."""
    zero = jnp.zeros((), jnp.float32)
    return EnvState(
        physics=physics,
        obs=obs,
        next_obs=obs,
        obs_signals=signals,
        signals=signals,
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
    """The EnvState after one raw step (no time limit, no reset: wrappers add those)."""
    return state.replace(
        physics=physics,
        obs=obs,
        next_obs=obs,
        obs_signals=signals,
        signals=signals,
        terms={k: jnp.asarray(v, jnp.float32) for k, v in terms.items()},
        primary=jnp.asarray(primary, jnp.float32),
        terminated=jnp.asarray(terminated, bool),
        truncated=jnp.zeros((), bool),
        step_count=state.step_count + 1,
        metrics=metrics if metrics is not None else state.metrics,
    )
