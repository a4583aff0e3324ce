"""``reward.constraints``: say "keep the episode's control cost under 50" instead of guessing
a weight; a Lagrange multiplier per constraint is learned by projected dual ascent.

Each constraint names a term (or a signal) ``c`` and an episode statistic with a bound:

- ``sum``: the episode's sum of ``c`` <= ``bound``;
- ``mean``: its mean per step <= ``bound``;
- ``rate``: the share of episodes in which ``c`` exceeded 0.5 at some step <= ``bound`` (a
  boolean signal: fell, collided).

The reward becomes ``r - sum_k lambda_k c_k`` per step (for ``rate``, ``lambda_k`` on the step
where the event first happens in the episode), after the combination and its shaping, so it
works with any ``combine``. After each update, from the episodes that ended in it,
``lambda_k <- max(0, lambda_k + step_size_k (statistic_k - bound_k))``; no ended episode, no
change. With ``kp`` and ``kd`` (0 by default) that integral becomes a PID controller (Stooke
et al. 2020, "Responsive safety in RL by PID Lagrangian methods"): the multiplier used is
``max(0, I + kp e + kd (e - e_before))`` with ``e`` the latest violation, which damps the
overshoot of a multiplier that the policy answers only slowly. The multipliers and the per-env
episode accumulators live in the reward state (exact
resume); ``bound``, ``step_size`` and the initial multiplier are traced params under
``params['constraints'][name]``. Logged each update: ``constraint/<name>/value`` (the
statistic over the episodes that ended in the latest update that had any; NaN before the
first), ``/multiplier`` and ``/violation`` (value - bound).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rlx.rewards.base import PerEnv, RewardFn, check_terms, episode_totals

STATISTICS = ("sum", "mean", "rate")


class ConstraintState(NamedTuple):
    inner: Any
    multipliers: dict  # name -> [] the integral part (the whole multiplier without kp, kd)
    values: (
        dict  # name -> [] the statistic of the latest update with ended episodes (NaN: none yet)
    )
    episode: PerEnv  # {name: {"sum": [B], "length": [B], "hit": [B]}}
    previous: dict = None  # name -> [] the statistic before ``values`` (for kd; NaN: none)


def _quantity(transition, source: tuple[str, str]) -> jax.Array:
    kind, name = source
    values = transition.terms[name] if kind == "term" else transition.next_signals[name]
    return values.astype(jnp.float32)


def constrained(inner: RewardFn, specs: dict[str, tuple[tuple[str, str], str]]) -> RewardFn:
    """``inner`` with ``specs`` ({name: ((term|signal, what), statistic)}) as constraints; its
    params are ``{**inner's, 'constraints': {name: {bound, step_size, init}}}``."""

    def init(key, term_names, num_envs):
        for name, ((kind, what), _) in specs.items():
            if kind == "term":
                check_terms([what], term_names, f"reward.constraints {name!r}")
        zeros = jnp.zeros((num_envs,), jnp.float32)
        return ConstraintState(
            inner=inner.init(key, term_names, num_envs),
            multipliers={name: jnp.asarray(jnp.nan, jnp.float32) for name in specs},
            values={name: jnp.asarray(jnp.nan, jnp.float32) for name in specs},
            episode=PerEnv({n: {"sum": zeros, "length": zeros, "hit": zeros} for n in specs}),
            previous={name: jnp.asarray(jnp.nan, jnp.float32) for name in specs},
        )

    def integral(params, state, name):
        current = state.multipliers[name]  # NaN until the first update: the initial value
        return jnp.where(jnp.isnan(current), params["constraints"][name]["init"], current)

    def multiplier(params, state, name):
        """PID: the integral plus kp times the latest violation plus kd times its change."""
        p = params["constraints"][name]
        known = lambda x: jnp.where(jnp.isnan(x), 0.0, x - p["bound"])
        error, before = known(state.values[name]), known(state.previous[name])
        derivative = jnp.where(jnp.isnan(state.previous[name]), 0.0, error - before)
        pid = integral(params, state, name) + p["kp"] * error + p["kd"] * derivative
        return jnp.maximum(0.0, pid)

    def apply(params, state, transition, *, gamma):
        inner_params = {k: v for k, v in params.items() if k != "constraints"}
        reward, inner_state, info = inner.apply(inner_params, state.inner, transition, gamma=gamma)
        done = jnp.logical_or(transition.terminated, transition.truncated)
        multipliers, values, episode, previous = {}, {}, {}, {}
        for name, (source, statistic) in specs.items():
            c = _quantity(transition, source)
            lam = multiplier(params, state, name)
            acc = state.episode.value[name]
            if statistic == "rate":  # the step where the event first happens pays lambda
                hit_now = (c > 0.5).astype(jnp.float32)
                penalty = hit_now * (1.0 - _seen_before(acc["hit"], hit_now, done))
                hit, events, count = episode_totals(acc["hit"], penalty, done)
                value, n = jnp.sum(events) / jnp.maximum(jnp.sum(count), 1.0), jnp.sum(count)
                new_acc = {**acc, "hit": jnp.minimum(hit, 1.0)}
            else:
                penalty = c
                run_sum, total, count = episode_totals(acc["sum"], c, done)
                run_len, length, _ = episode_totals(acc["length"], jnp.ones_like(c), done)
                per = jnp.sum(count) if statistic == "sum" else jnp.sum(length)
                value, n = jnp.sum(total) / jnp.maximum(per, 1.0), jnp.sum(count)
                new_acc = {**acc, "sum": run_sum, "length": run_len}
            lam_fixed = jax.lax.stop_gradient(lam)
            reward = reward - lam_fixed * penalty
            info[f"constraint/{name}"] = -lam_fixed * penalty
            p = params["constraints"][name]
            part = integral(params, state, name)
            stepped = jnp.maximum(0.0, part + p["step_size"] * (value - p["bound"]))
            multipliers[name] = jnp.where(n > 0, stepped, part)
            values[name] = jnp.where(n > 0, value, state.values[name])  # NaN before any
            previous[name] = jnp.where(n > 0, state.values[name], state.previous[name])
            episode[name] = new_acc
        new_state = ConstraintState(inner_state, multipliers, values, PerEnv(episode), previous)
        return reward, new_state, info

    def metrics(params, state) -> dict:
        out = dict(inner.metrics(params, state.inner)) if inner.metrics is not None else {}
        for name in specs:
            value = state.values[name]
            out[f"constraint/{name}/value"] = value
            out[f"constraint/{name}/multiplier"] = multiplier(params, state, name)
            out[f"constraint/{name}/violation"] = value - params["constraints"][name]["bound"]
        return out

    return inner._replace(init=init, apply=apply, metrics=metrics)


def _seen_before(running_hit: jax.Array, hit: jax.Array, done: jax.Array) -> jax.Array:
    """[T, B]: 1 where the event already happened earlier in the same episode."""

    def step(seen, inputs):
        h, d = inputs
        before = seen
        seen = jnp.where(d, 0.0, jnp.maximum(seen, h))
        return seen, before

    _, before = jax.lax.scan(step, jnp.minimum(running_hit, 1.0), (hit, done))
    return before
