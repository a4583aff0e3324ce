"""The data contract's types: the env protocol and its ``EnvState``, action spaces, and the
``Transition`` the rollout stores (leading axes ``[T, B]``).

A leaf module (it imports only jax, flax and the standard library), so that the learner and
the policy's distributions can name these types without importing the envs package.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array
# A pytree of arrays (a state, params, hparams, metrics, reward params): any nesting of
# dicts, lists, tuples and flax/struct dataclasses with jax.Array leaves.
PyTree = Any


@struct.dataclass
class EnvState:
    """State of one environment after a step (leading ``[B]`` axis once batched).

    ``obs``/``next_obs`` and ``signals``/``next_signals`` pair as in ``Transition``: the first
    of each describes the state the next step starts from (after auto-reset), the second the
    state this step produced (before auto-reset).

    Fields:
      physics: env-specific pytree the dynamics evolve (post-reset after auto-reset).
      obs: [obs_size] observation after this step, *after* auto-reset.
      next_obs: [obs_size] observation this step produced, *before* auto-reset.
      signals: dict of [] signals at the state ``obs`` describes (post-reset).
      next_signals: dict of [] signals at the pre-reset next state (pairs with ``next_obs``).
      terms: dict of [] unweighted reward terms of this transition.
      primary: [] the task objective of this step.
      terminated: [] bool, a true terminal state (no bootstrap, zero potential).
      truncated: [] bool, the time limit ended the episode (bootstrap from ``next_obs``).
      step_count: [] int32 steps taken in the current episode (0 right after a reset).
      metrics: dict of [] env diagnostics.
      key: PRNG key the env consumes on reset (and in its step, where it draws noise).
        A ``reset(key)`` that draws from its key must keep a new one here, not the one it was
        given (``key, init_key = jax.random.split(key)``): the ``EpisodeWrapper`` resets the
        next episode with it.
      reset_cache: (physics, obs, signals) of the episode's first state when the
        ``EpisodeWrapper`` resets to a cached state (``reset_mode='cached'``), else None.
    """

    physics: Any
    obs: Array
    next_obs: Array
    # The two signal dicts keep the places of the former ``obs_signals`` and ``signals``, so
    # the flattened leaf order of an EnvState is what it was before the rename.
    signals: dict[str, Array]
    next_signals: dict[str, Array]
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


def actor_observation_size(env: Env) -> int | None:
    """How many leading entries of ``env``'s observation its policy may read, where the env
    offers a privileged rest for the critic alone (its ``actor_observation_size``); None where
    the policy reads all of it."""
    return getattr(env, "actor_observation_size", None)


@struct.dataclass
class Transition:
    """One step of every env; each leaf has leading axes ``[T, B]`` (time-major).

    Fields:
      obs: [T, B, obs_size] raw (un-normalised) observation at s.
      action: [T, B, ...] the policy's raw sample (pre-squash for continuous actions).
      log_prob: [T, B] log-probability of ``action`` under the behaviour policy.
      value: [T, B] V(s) under the behaviour value network.
      next_obs: [T, B, obs_size] observation at s', before auto-reset.
      terms: dict of [T, B] unweighted reward terms.
      primary: [T, B] the task objective.
      signals: dict of [T, B] signals at s.
      next_signals: dict of [T, B] signals at s' (pre-reset).
      terminated: [T, B] bool, s' is terminal.
      truncated: [T, B] bool, the time limit ended the episode at s'.
    """

    obs: Array
    action: Array
    log_prob: Array
    value: Array
    next_obs: Array
    terms: dict[str, Array]
    primary: Array
    signals: dict[str, Array]
    next_signals: dict[str, Array]
    terminated: Array
    truncated: Array
