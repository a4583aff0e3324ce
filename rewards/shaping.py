"""Shaping: transforms of the combined reward, and of the terms before they are combined.

- ``potential_based``: r + F, F_t = gamma (1 - terminated_t) Phi(s'_t) - Phi(s_t) (Ng et al.
  1999), Phi evaluated here on the transition's signals (or observation) at s and at the
  pre-reset s'. Terminal states have potential 0 (Grzes 2017). At a truncation (time limit)
  s' is the true pre-reset state and F keeps gamma Phi(s'): the learner bootstraps V(s') there,
  so per episode sum_t gamma^t F_t = gamma^T Phi(s_T) - Phi(s_0) (with Phi(s_T) = 0 when
  terminated). The potential may be dynamic: scaled by a schedule over training updates
  (Devlin & Kudenko 2012; both potentials of a batch use the same snapshot) or learned (a
  linear function of features whose params are reward params).
- ``bounded``: PAR's bounded, centred reward: per step sigmoid(k (r - r_ref)), or per episode
  sigmoid(k (R - R_ref)) on the episode's last step; the reference is a param or a running
  mean.
- ``clip``: r clipped to [low, high].
- ``normalize_terms``: each named term divided by its running standard deviation (optionally
  centred), before the combination.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.core import running_stats
from rlx.core.types import Transition
from rlx.rewards.base import EmptyState, PerEnv, RewardTransform, TermTransform, check_terms
from rlx.rewards.weights import features_of, lipschitz_penalty


class Potential(NamedTuple):
    """value: (params, transition, at_next) -> Phi [T, B] at s (or at s' if ``at_next``).

    penalty: None or (params, transition) -> [] Lipschitz penalty of a learned potential.
    """

    value: object
    penalty: object = None


def signal_potential(signals: Sequence[str]) -> Potential:
    """Phi(s) = sum_i c_i signal_i(s); params {'coef': {signal: c_i}}."""
    signals = tuple(signals)

    def value(params, transition: Transition, at_next: bool):
        source = transition.next_signals if at_next else transition.signals
        return sum(params["coef"][name] * source[name] for name in signals)

    return Potential(value)


def linear_potential(
    features: Sequence[str], lipschitz_coef: float = 0.0, lipschitz_k: float = 1.0
) -> Potential:
    """A learned Phi(s) = kernel . x(s) + bias, x(s) the named signals or the observation.

    params {'kernel': [F], 'bias': []}; with ``lipschitz_coef > 0`` a gradient penalty.
    """
    features = tuple(features)

    def value(params, transition: Transition, at_next: bool):
        x = features_of(transition, features, at_next)
        return x @ params["kernel"] + params["bias"]

    def penalty(params, transition):
        x = jax.lax.stop_gradient(features_of(transition, features))
        fn = lambda v: v @ params["kernel"] + params["bias"]
        return lipschitz_coef * lipschitz_penalty(fn, x, lipschitz_k)

    return Potential(value, penalty if lipschitz_coef > 0 else None)


class ScheduleState(NamedTuple):
    updates: jax.Array  # [] int32 applications so far (training updates)


def potential_based(potential: Potential, decay_updates: int = 0) -> RewardTransform:
    """r + F with F_t = scale_u (gamma (1 - terminated_t) Phi(s'_t) - Phi(s_t)).

    params: {'potential': the potential's params, 'scale': [], 'final_scale': []}; the scale
    moves linearly from ``scale`` to ``final_scale`` over ``decay_updates`` updates (0: fixed).
    info: 'shaping': F [T, B].
    """

    def init(key, term_names, num_envs):
        del key, term_names, num_envs
        return ScheduleState(updates=jnp.zeros((), jnp.int32))

    def apply(params, state: ScheduleState, reward, transition: Transition, *, gamma):
        scale = params["scale"]
        if decay_updates > 0:
            progress = jnp.minimum(state.updates.astype(jnp.float32) / decay_updates, 1.0)
            scale = scale + (params["final_scale"] - scale) * progress
        phi = potential.value(params["potential"], transition, False)
        phi_next = potential.value(params["potential"], transition, True)
        alive = 1.0 - transition.terminated.astype(jnp.float32)
        shaping = scale * (gamma * alive * phi_next - phi)
        return reward + shaping, ScheduleState(state.updates + 1), {"shaping": shaping}

    penalty = None
    if potential.penalty is not None:
        penalty = lambda params, transition: potential.penalty(params["potential"], transition)
    return RewardTransform(init, apply, penalty)


class BoundedState(NamedTuple):
    reference: jax.Array  # [] running reference (mean reward or mean episode return)
    seen: jax.Array  # [] bool: the running reference has a value
    episode_sum: PerEnv  # [B] reward of each env's current episode so far


def bounded(mode: str = "step", running: bool = False) -> RewardTransform:
    """PAR's bounded, centred reward.

    mode 'step': r' = sigmoid(k (r - r_ref)).
    mode 'episode': r'_t = dense_weight * r_t + done_t * sigmoid(k (R - R_ref)), R the episode's
    return under r, delivered on its last step (episodes spanning rollouts are accumulated).
    r_ref is the param ``reference``, or with ``running`` an exponential moving average (rate
    1 - ``momentum``) of the mean reward (step) or of finished episodes' returns (episode),
    updated after each batch; until it has a value the batch's own mean is used.
    params: {'k', 'reference', 'momentum', 'dense_weight'} (all []).
    info: 'score': the sigmoid [T, B] (on episode ends only in episode mode).
    """
    if mode not in ("step", "episode"):
        raise ValueError(f"bounded mode must be 'step' or 'episode', got {mode!r}")

    def init(key, term_names, num_envs):
        del key, term_names
        return BoundedState(
            reference=jnp.zeros((), jnp.float32),
            seen=jnp.zeros((), bool),
            episode_sum=PerEnv(jnp.zeros((num_envs,), jnp.float32)),
        )

    def reference_for(params, state, batch_mean):
        if not running:
            return params["reference"], state.reference, state.seen
        current = jnp.where(state.seen, state.reference, batch_mean)
        momentum = params["momentum"]
        updated = momentum * current + (1.0 - momentum) * batch_mean
        return jax.lax.stop_gradient(current), jax.lax.stop_gradient(updated), jnp.array(True)

    def apply(params, state: BoundedState, reward, transition: Transition, *, gamma=None):
        del gamma
        k = params["k"]
        if mode == "step":
            ref, new_ref, seen = reference_for(params, state, jnp.mean(reward))
            score = jax.nn.sigmoid(k * (reward - ref))
            new_state = state._replace(reference=new_ref, seen=seen)
            return score, new_state, {"score": score}
        done = jnp.logical_or(transition.terminated, transition.truncated)

        def accumulate(total, inputs):
            r, d = inputs
            total = total + r
            return jnp.where(d, 0.0, total), total

        episode_sum, returns = jax.lax.scan(accumulate, state.episode_sum.value, (reward, done))
        finished = done.astype(jnp.float32)
        count = jnp.sum(finished)
        mean_return = jnp.sum(returns * finished) / jnp.maximum(count, 1.0)
        ref, new_ref, seen = reference_for(params, state, mean_return)
        if running:  # no finished episode in this batch: keep the reference as it was
            new_ref = jnp.where(count > 0, new_ref, state.reference)
            seen = jnp.where(count > 0, seen, state.seen)
        score = jnp.where(done, jax.nn.sigmoid(k * (returns - ref)), 0.0)
        shaped = params["dense_weight"] * reward + score
        new_state = BoundedState(reference=new_ref, seen=seen, episode_sum=PerEnv(episode_sum))
        return shaped, new_state, {"score": score}

    return RewardTransform(init, apply)


def clip() -> RewardTransform:
    """r' = clip(r, low, high); params {'low': [], 'high': []}."""

    def init(key, term_names, num_envs):
        return EmptyState()

    def apply(params, state, reward, transition, *, gamma=None):
        return jnp.clip(reward, params["low"], params["high"]), state, {}

    return RewardTransform(init, apply)


def normalize_terms(names: Sequence[str], center: bool = False) -> TermTransform:
    """Each term in ``names`` divided by its running std (and centred if ``center``).

    The statistics (count, mean, var over every step seen, parallel Welford) are updated with
    the batch before it is normalised, and carry no gradient. params: {} (none).
    info: none (the normalised terms flow on to the combination, whose contributions are
    logged).
    """
    names = tuple(names)

    def init(key, term_names, num_envs):
        del key, num_envs
        check_terms(names, tuple(term_names))
        return running_stats.init(len(names))

    def apply(params, state, terms, transition):
        del params, transition
        stacked = jnp.stack([terms[name] for name in names], axis=-1)
        state = running_stats.update(state, jax.lax.stop_gradient(stacked.reshape(-1, len(names))))
        std = jnp.sqrt(state.var + 1e-8)
        shifted = stacked - state.mean if center else stacked
        normalized = shifted / std
        out = dict(terms)
        for i, name in enumerate(names):
            out[name] = normalized[..., i]
        return out, state, {}

    return TermTransform(init, apply)
