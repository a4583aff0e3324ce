"""``reward.parameterization: dynamic``: weights that adapt during training from each
objective's improvement rate (Dynamic Weight Average, Liu, Johns and Davison, CVPR 2019, "End-
to-End Multi-Task Learning with Attention", with returns in place of losses).

The objectives are terms of ``reward.weights`` (``reward.dynamic.objectives``; all of them by
default). Objective ``k``'s performance ``J_k`` is its episode sum signed by its configured
weight (so higher is better for a cost too: ``J = -sum ctrl_cost`` for a negative weight),
smoothed over the episodes that ended in each update by an exponential moving average
(``momentum``). Every ``period`` updates, each objective's relative improvement since the last
period,

    i_k = (J_k - J_k^before) / (|J_k^before| + eps),

sets the multipliers of the configured weights,

    m_k = K * softmax_k(-i_k / temperature),

so an objective that improved least (or got worse) gets more weight; ``K`` is the number of
objectives, so the multipliers average 1 and ``temperature`` -> infinity gives back the fixed
weights. DWA's rule is the case of a loss ``L`` (its ratio ``L(t-1)/L(t-2)`` is ``1 - i``); the
weights used are ``w_k * m_k``. Until two periods have passed the multipliers are 1.

``temperature``, ``momentum``, ``period`` and ``eps`` are traced params under
``params['dynamic']``; the multipliers, the averages and the per-env episode sums live in the
reward state (exact resume); a period in which no episode ended changes nothing (its end moves
to the next update that has one). Logged each update: ``dynamic/<term>`` (its multiplier).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rlx.rewards.base import PerEnv, RewardFn, episode_totals

DEFAULTS = {"temperature": 2.0, "momentum": 0.9, "period": 10.0, "eps": 1e-3}


class DynamicState(NamedTuple):
    inner: Any
    updates: jax.Array  # [] int32
    multipliers: jax.Array  # [K]
    average: jax.Array  # [K] EMA of the objectives' signed episode sums (NaN: no episode yet)
    before: jax.Array  # [K] the average at the last period's end (NaN: none yet)
    episode: PerEnv  # [B, K] running episode sums
    ended: jax.Array  # [] episodes ended since the last period's end


def multipliers(improvement: jax.Array, temperature: jax.Array) -> jax.Array:
    """[K] ``K * softmax(-improvement / temperature)``."""
    return improvement.shape[0] * jax.nn.softmax(-improvement / temperature)


def dynamic(inner: RewardFn, objectives: tuple[str, ...], signs: dict[str, float]) -> RewardFn:
    """``inner`` (a weighted sum: its weights at ``params['combine'][term]``) with the weights
    of ``objectives`` multiplied by the improvement-rate rule; params ``{**inner's,
    'dynamic': {temperature, momentum, period, eps}}``."""
    names = tuple(objectives)
    sign = jnp.asarray([signs[n] for n in names], jnp.float32)
    k = len(names)

    def init(key, term_names, num_envs):
        nan = jnp.full((k,), jnp.nan, jnp.float32)
        return DynamicState(
            inner=inner.init(key, term_names, num_envs),
            updates=jnp.zeros((), jnp.int32),
            multipliers=jnp.ones((k,), jnp.float32),
            average=nan,
            before=nan,
            episode=PerEnv(jnp.zeros((num_envs, k), jnp.float32)),
            ended=jnp.zeros((), jnp.float32),
        )

    def apply(params, state, transition, *, gamma):
        p = params["dynamic"]
        inner_params = {k: v for k, v in params.items() if k != "dynamic"}
        combine = dict(inner_params["combine"])
        for i, name in enumerate(names):
            combine[name] = combine[name] * jax.lax.stop_gradient(state.multipliers[i])
        inner_params["combine"] = combine
        reward, inner_state, info = inner.apply(inner_params, state.inner, transition, gamma=gamma)
        done = jnp.logical_or(transition.terminated, transition.truncated)
        values = jnp.stack([transition.terms[n] for n in names], axis=-1) * sign  # [T, B, K]
        per_objective = jax.vmap(episode_totals, in_axes=(1, 2, None), out_axes=(1, 1, 1))
        running, totals, counts = per_objective(state.episode.value, values, done)  # [B, K]
        count = jnp.sum(counts, axis=0)  # [K] (the same for every objective)
        mean = jnp.sum(totals, axis=0) / jnp.maximum(count, 1.0)
        smoothed = jnp.where(
            jnp.isnan(state.average),
            mean,
            p["momentum"] * state.average + (1 - p["momentum"]) * mean,
        )
        average = jnp.where(count > 0, smoothed, state.average)
        updates = state.updates + 1
        ended = state.ended + count[0]
        # A period boundary with no episode ended in the period keeps everything: its
        # improvement would read as 0 and reset the multipliers to 1.
        boundary = jnp.mod(updates.astype(jnp.float32), jnp.maximum(p["period"], 1.0)) == 0
        boundary = boundary & (ended > 0)
        improvement = (average - state.before) / (jnp.abs(state.before) + p["eps"])
        known = ~jnp.any(jnp.isnan(improvement))
        new = jnp.where(
            boundary & known, multipliers(improvement, p["temperature"]), state.multipliers
        )
        before = jnp.where(boundary, average, state.before)
        ended = jnp.where(boundary, 0.0, ended)
        new_state = DynamicState(inner_state, updates, new, average, before, PerEnv(running), ended)
        return reward, new_state, info

    def metrics(params, state) -> dict:
        out = dict(inner.metrics(params, state.inner)) if inner.metrics is not None else {}
        return out | {f"dynamic/{name}": state.multipliers[i] for i, name in enumerate(names)}

    return inner._replace(init=init, apply=apply, metrics=metrics)
