"""Combinations: how unweighted terms become one reward per step.

- ``weighted_sum``: sum_i w_i r_i.
- ``product``: (sum_i w_i r_i) * prod_j max(f_j, 0)^a_j, progress times penalty factors (CaRL).
- ``geometric_mean``: sign * (prod_i |w_i r_i|)^(1/N), sign = +1 iff every w_i r_i >= 0 (KRC).
- ``gated``: levels by priority, each gated by every higher level reaching its threshold (G-RA).
- ``gated_outcome``: an episode outcome gates the immediate terms of that whole episode (G-RA's
  two-level form).

Each is a ``RewardFn`` over ``transition.terms``; ``info`` holds the additive contributions
(keyed by term name) where the combination is a sum, and gates (``gate/...``) and factors
(``factor/...``) where it is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.core.types import Transition
from rlx.rewards.base import EmptyState, PerEnv, RewardFn, check_terms, zeros_like_steps
from rlx.rewards.weights import Parameterization, free


def _stateless_init(needed: Sequence[str]):
    def init(key, term_names, num_envs=None):
        del key, num_envs
        check_terms(needed, tuple(term_names))
        return EmptyState()

    return init


def _weighted(raw, parameterization: Parameterization, transition: Transition, names):
    weights = parameterization.decode(raw, transition)
    return {name: weights[name] * transition.terms[name] for name in names}


def _mean_weights(parameterization: Parameterization, key: str | None = None):
    """(params, transition) -> {term: [] mean decoded weight} for ``RewardFn.weights``."""

    def weights(params, transition):
        raw = params if key is None else params[key]
        decoded = parameterization.decode(raw, transition)
        return {name: jnp.mean(w) for name, w in decoded.items()}

    return weights


def _sub_penalty(parameterization: Parameterization, key: str | None):
    if parameterization.penalty is None:
        return None
    if key is None:
        return parameterization.penalty
    return lambda params, transition: parameterization.penalty(params[key], transition)


def weighted_sum(names: Sequence[str], parameterization: Parameterization | None = None):
    """reward = sum_i w_i * term_i over the static ``names``.

    params: the parameterisation's raw params (``free``: {name: w_i}).
    info: each weighted contribution ``w_i * term_i`` [T, B], keyed by term name.
    """
    names, parameterization = tuple(names), parameterization or free()

    def apply(params, state, transition: Transition, *, gamma=None):
        del gamma
        contributions = _weighted(params, parameterization, transition, names)
        reward = sum(contributions.values(), zeros_like_steps(transition))
        return reward, state, contributions

    return RewardFn(
        _stateless_init(names),
        apply,
        _sub_penalty(parameterization, None),
        _mean_weights(parameterization),
    )


def safe_power(base: jax.Array, exponent: jax.Array) -> jax.Array:
    """max(base, 0)^exponent with 0 at base <= 0, and finite gradients everywhere."""
    positive = base > 0
    safe = jnp.where(positive, base, 1.0)
    return jnp.where(positive, jnp.exp(exponent * jnp.log(safe)), 0.0)


def product(
    progress: Sequence[str],
    factors: Sequence[str],
    parameterization: Parameterization | None = None,
):
    """reward = (sum_i w_i progress_i) * prod_j max(factor_j, 0)^a_j.

    Factors are penalty multipliers in [0, 1] (1: no penalty); a factor at or below 0 zeroes the
    reward, whatever its exponent; the sign is the progress's.
    params: {'progress': raw progress weights, 'exponents': {factor: a_j}}.
    info: 'progress' [T, B] and 'factor/<name>' (max(f, 0)^a) [T, B].
    """
    progress, factors = tuple(progress), tuple(factors)
    parameterization = parameterization or free()

    def apply(params, state, transition: Transition, *, gamma=None):
        del gamma
        parts = _weighted(params["progress"], parameterization, transition, progress)
        value = sum(parts.values(), zeros_like_steps(transition))
        info = {"progress": value}
        reward = value
        for name in factors:
            factor = safe_power(transition.terms[name], params["exponents"][name])
            info[f"factor/{name}"] = factor
            reward = reward * factor
        return reward, state, info

    return RewardFn(
        _stateless_init(progress + factors),
        apply,
        _sub_penalty(parameterization, "progress"),
        _mean_weights(parameterization, "progress"),
    )


def geometric_mean(
    names: Sequence[str], parameterization: Parameterization | None = None, clip: bool = True
):
    """Signed geometric mean (Lucy-SKG's KRC) of the scaled terms x_i = w_i * term_i.

    reward = sign * (prod_i |x_i|)^(1/N), sign = +1 iff every x_i >= 0, else -1 (a logical
    AND); any x_i = 0 gives 0. With ``clip`` each x_i is clipped to [-1, 1] first (the terms are
    designed in that range). params: the parameterisation's raw weights.
    info: 'scaled/<name>': x_i [T, B].
    """
    names, parameterization = tuple(names), parameterization or free()
    count = float(len(names))

    def apply(params, state, transition: Transition, *, gamma=None):
        del gamma
        scaled = _weighted(params, parameterization, transition, names)
        if clip:
            scaled = {k: jnp.clip(v, -1.0, 1.0) for k, v in scaled.items()}
        stacked = jnp.stack([scaled[name] for name in names])
        magnitude = jnp.abs(stacked)
        nonzero = jnp.all(magnitude > 0, axis=0)
        logs = jnp.log(jnp.where(magnitude > 0, magnitude, 1.0))
        mean = jnp.where(nonzero, jnp.exp(jnp.sum(logs, axis=0) / count), 0.0)
        sign = jnp.where(jnp.all(stacked >= 0, axis=0), 1.0, -1.0)
        info = {f"scaled/{name}": value for name, value in scaled.items()}
        return sign * mean, state, info

    return RewardFn(
        _stateless_init(names),
        apply,
        _sub_penalty(parameterization, None),
        _mean_weights(parameterization),
    )


def _gate(value, threshold, temperature, soft: bool):
    if soft:
        return jax.nn.sigmoid((value - threshold) / temperature)
    return (value >= threshold).astype(jnp.float32)


def gated(levels: Sequence[Sequence[str]], soft: bool = False):
    """Gated accumulation over priority levels (G-RA), highest priority first.

    Level k's value is L_k = sum_i w_ki r_i; its gate is g_k = prod_{j<k} 1[L_j >= delta_j]
    (``soft``: sigmoid((L_j - delta_j) / temperature), differentiable in the thresholds);
    reward = sum_k g_k L_k. Weights are free.
    params: {'levels': [{term: w}, ...], 'thresholds': [delta_k, ...] (one per level; the last
    gates nothing), 'temperature': []}.
    info: 'level/<k>' = g_k L_k and 'gate/<k>' = g_k, [T, B].
    """
    levels = tuple(tuple(level) for level in levels)
    needed = tuple(name for level in levels for name in level)

    def apply(params, state, transition: Transition, *, gamma=None):
        del gamma
        gate = jnp.ones_like(zeros_like_steps(transition))
        reward, info = zeros_like_steps(transition), {}
        for k, names in enumerate(levels):
            weights = params["levels"][k]
            value = sum(
                (weights[name] * transition.terms[name] for name in names),
                zeros_like_steps(transition),
            )
            info[f"level/{k}"] = gate * value
            info[f"gate/{k}"] = gate
            reward = reward + gate * value
            opened = _gate(value, params["thresholds"][k], params["temperature"], soft)
            gate = gate * opened
        return reward, state, info

    def weights(params, transition):
        del transition
        return {
            f"level{k}/{name}": jnp.asarray(w)
            for k, level in enumerate(params["levels"])
            for name, w in level.items()
        }

    return RewardFn(_stateless_init(needed), apply, None, weights)


class OutcomeState(NamedTuple):
    """Per env: the running episode outcome and the gate of the last finished episode."""

    running: PerEnv
    last_gate: PerEnv


def gated_outcome(
    outcome: str,
    immediate: Sequence[str],
    aggregate: str = "last",
    soft: bool = False,
    parameterization: Parameterization | None = None,
):
    """An episode's outcome gates that episode's immediate terms (G-RA, two levels).

    The outcome O of an episode is its ``outcome`` term on the last step (``aggregate='last'``)
    or its maximum over the episode (``'max'``). reward_t = w_o * O on the episode's last step
    + g * sum_i w_i r_i,t, with g = 1[O >= delta] (``soft``: sigmoid((O - delta) / temperature)).

    When the gate is known: a step whose episode ends inside this rollout gets its own episode's
    gate; a step of an episode still running when the rollout ends gets the gate of that env's
    last finished episode (a lag of at most one episode; 0 before any episode has finished).
    params: {'immediate': raw weights, 'outcome_weight': [], 'threshold': [], 'temperature': []}.
    info: 'outcome' (w_o O at episode ends), 'gate' (g per step) and each immediate contribution
    g w_i r_i keyed by term name, [T, B].
    """
    if aggregate not in ("last", "max"):
        raise ValueError(f"aggregate must be 'last' or 'max', got {aggregate!r}")
    immediate, parameterization = tuple(immediate), parameterization or free()

    def init(key, term_names, num_envs):
        del key
        check_terms((outcome, *immediate), tuple(term_names))
        zeros = jnp.zeros((num_envs,), jnp.float32)
        running = jnp.full((num_envs,), -jnp.inf, jnp.float32) if aggregate == "max" else zeros
        return OutcomeState(running=PerEnv(running), last_gate=PerEnv(zeros))

    def apply(params, state: OutcomeState, transition: Transition, *, gamma=None):
        del gamma
        done = jnp.logical_or(transition.terminated, transition.truncated)
        values = transition.terms[outcome]

        def forward(carry, inputs):
            running, last_gate = carry
            value, done_t = inputs
            running = jnp.maximum(running, value) if aggregate == "max" else value
            gate = _gate(running, params["threshold"], params["temperature"], soft)
            episode_outcome = running
            last_gate = jnp.where(done_t, gate, last_gate)
            if aggregate == "max":
                running = jnp.where(done_t, -jnp.inf, running)
            return (running, last_gate), (episode_outcome, gate)

        init_carry = (state.running.value, state.last_gate.value)
        (running, last_gate), (episode_outcome, gate_at) = jax.lax.scan(
            forward, init_carry, (values, done)
        )

        def backward(carry, inputs):
            done_t, gate_t = inputs
            carry = jnp.where(done_t, gate_t, carry)
            return carry, carry

        _, gate = jax.lax.scan(backward, last_gate, (done, gate_at), reverse=True)
        parts = _weighted(params["immediate"], parameterization, transition, immediate)
        info = {name: gate * value for name, value in parts.items()}
        final = jnp.where(done, episode_outcome, 0.0)
        info["outcome"] = params["outcome_weight"] * final
        info["gate"] = gate
        reward = sum(info[name] for name in immediate) + info["outcome"]
        new_state = OutcomeState(running=PerEnv(running), last_gate=PerEnv(last_gate))
        return reward, new_state, info

    return RewardFn(
        init,
        apply,
        _sub_penalty(parameterization, "immediate"),
        _mean_weights(parameterization, "immediate"),
    )
