"""The RewardFn interface and its composition, in the manner of optax.

A reward is a pair of pure functions::

    init(key, term_names, num_envs) -> RewardState
    apply(params, reward_state, transition, *, gamma) -> (reward [T, B], reward_state, info)

``params`` is a pytree of traced values (weights, thresholds, temperatures, potential
parameters), so a reward can be vmapped over and differentiated in; which terms, combinations
and transforms exist is static (closed over by the factories). ``gamma`` is the learner's
discount (potential-based shaping must use the same one). ``info`` maps names to [T, B]
per-step values (weighted contributions, gates, factors, shaping) that the learner logs as
episode sums.

Per-env parts of a state (episode accumulators, leading axis ``[num_envs]``) are wrapped in
``PerEnv`` so that ``for_batch`` can swap them for another batch size (evaluation) while running
statistics carry over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rlx.core.types import Transition

RewardState = Any
RewardParams = Any
Penalty = Callable[[RewardParams, Transition], jax.Array]


class RewardFn(NamedTuple):
    """A reward function over stored transitions ``[T, B]``.

    init: (key, term_names, num_envs) -> RewardState; checks the terms it needs exist.
    apply: (params, state, transition, *, gamma) -> (reward [T, B], state, info).
    penalty: optional (params, transition) -> [] regulariser of learned parts (a Lipschitz
      penalty), for the optimiser of the reward params to add; None when nothing is learned.
    weights: optional (params, transition) -> {term: []} the effective (decoded) weight of each
      term, averaged over the transition's steps where it depends on the state; what a
      meta-learner logs as "the weights" whatever the parameterisation.
    metrics: optional (params, state) -> {name: []} scalars the learner logs each update (a
      schedule's current values, ``schedule/<path>``).
    """

    init: Callable[..., RewardState]
    apply: Callable[..., tuple[jax.Array, RewardState, dict]]
    penalty: Penalty | None = None
    weights: Callable[[RewardParams, Transition], dict[str, jax.Array]] | None = None
    metrics: Callable[[RewardParams, RewardState], dict[str, jax.Array]] | None = None


class RewardTransform(NamedTuple):
    """Maps a combined reward to a shaped one (potential shaping, bounding, clipping).

    init: (key, term_names, num_envs) -> state.
    apply: (params, state, reward [T, B], transition, *, gamma) -> (reward, state, info).
    """

    init: Callable[..., RewardState]
    apply: Callable[..., tuple[jax.Array, RewardState, dict]]
    penalty: Penalty | None = None


class TermTransform(NamedTuple):
    """Maps the unweighted terms before they are combined (running normalisation).

    init: (key, term_names, num_envs) -> state.
    apply: (params, state, terms: dict of [T, B], transition) -> (terms, state, info).
    """

    init: Callable[..., RewardState]
    apply: Callable[..., tuple[dict, RewardState, dict]]


class EmptyState(NamedTuple):
    """State of a stateless reward."""


class PerEnv(NamedTuple):
    """A per-env part of a reward state: ``value`` has leading axis ``[num_envs]``."""

    value: Any


def _is_per_env(x) -> bool:
    return isinstance(x, PerEnv)


def for_batch(state: RewardState, fresh: RewardState) -> RewardState:
    """``state`` with its ``PerEnv`` parts taken from ``fresh`` (another batch size).

    Evaluation uses this: running statistics learned in training carry over, episode
    accumulators start afresh for the evaluation envs.
    """
    return jax.tree.map(
        lambda old, new: new if _is_per_env(old) else old, state, fresh, is_leaf=_is_per_env
    )


class UnknownTermError(ValueError):
    pass


def check_terms(requested, available: Sequence[str], where: str = "reward") -> None:
    """Raises ``UnknownTermError`` naming the unknown term and the env's available terms."""
    for name in requested:
        if name not in available:
            raise UnknownTermError(
                f"{where}: unknown reward term {name!r} (the env has: {', '.join(available)})"
            )


def _sum_penalties(parts: dict[str, Penalty | None]) -> Penalty | None:
    active = {name: fn for name, fn in parts.items() if fn is not None}
    if not active:
        return None

    def penalty(params, transition):
        return sum(fn(params[name], transition) for name, fn in active.items())

    return penalty


def chain(
    combine: RewardFn,
    shaping: Sequence[tuple[str, RewardTransform]] = (),
    terms: Sequence[tuple[str, TermTransform]] = (),
) -> RewardFn:
    """term transforms -> combination -> shaping transforms, as one RewardFn.

    Params and state are dicts keyed by stage name: ``'combine'`` for the combination and each
    transform's own (unique) name. ``info`` holds the combination's entries as they are and
    each transform's entries as ``'<name>/<key>'``.
    """
    names = [name for name, _ in (*terms, *shaping)]
    if "combine" in names or len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique and not 'combine', got {names}")
    terms, shaping = tuple(terms), tuple(shaping)

    def init(key, term_names, num_envs):
        stages = (*terms, ("combine", combine), *shaping)
        keys = jax.random.split(key, len(stages))
        return {
            name: stage.init(k, term_names, num_envs)
            for (name, stage), k in zip(stages, keys, strict=True)
        }

    def apply(params, state, transition: Transition, *, gamma):
        new_state, info = {}, {}
        values = transition.terms
        for name, stage in terms:
            values, new_state[name], extra = stage.apply(
                params[name], state[name], values, transition
            )
            info |= {f"{name}/{k}": v for k, v in extra.items()}
        combined = transition.replace(terms=values) if terms else transition
        reward, new_state["combine"], extra = combine.apply(
            params["combine"], state["combine"], combined, gamma=gamma
        )
        info |= extra
        for name, stage in shaping:
            reward, new_state[name], extra = stage.apply(
                params[name], state[name], reward, combined, gamma=gamma
            )
            info |= {f"{name}/{k}": v for k, v in extra.items()}
        return reward, new_state, info

    penalty = _sum_penalties(
        {"combine": combine.penalty} | {name: stage.penalty for name, stage in shaping}
    )
    weights = None
    if combine.weights is not None:
        weights = lambda params, transition: combine.weights(params["combine"], transition)
    return RewardFn(init=init, apply=apply, penalty=penalty, weights=weights)


def zeros_like_steps(transition: Transition) -> jax.Array:
    """A float32 [T, B] zero array shaped like the transition's steps."""
    return jnp.zeros_like(transition.primary, dtype=jnp.float32)


def episode_totals(running: jax.Array, values: jax.Array, done: jax.Array):
    """Episode sums of ``values`` [T, B] carried across batches: (running' [B], per env the
    summed totals of the episodes that ended in the batch [B], how many ended per env [B])."""
    t = jnp.arange(done.shape[0])[:, None]
    last = jnp.max(jnp.where(done, t, -1), axis=0)  # [B] the last step that ended an episode
    ended = last >= 0
    upto_last = t <= last[None]
    total = running + jnp.sum(jnp.where(upto_last, values, 0.0), axis=0)
    after = jnp.sum(jnp.where(upto_last, 0.0, values), axis=0)
    running_after = jnp.where(ended, after, running + jnp.sum(values, axis=0))
    count = jnp.sum(done.astype(jnp.float32), axis=0)
    return running_after, jnp.where(ended, total, 0.0), count
