"""``reward.schedule``: reward params that follow a curriculum over training updates.

Keyed by a reward param's path, as ``meta.learn`` is (``combine/alive``; with ``combine:
product`` the weights sit under ``combine/progress/<term>`` and the exponents under
``combine/exponents/<term>``). The scheduled value replaces the param's own raw value (the
weight itself under the default ``parameterization: free``). Kinds, with ``u`` the number of
updates so far:

- ``linear``: ``start + (end - start) * min(u / updates, 1)``;
- ``cosine``: ``end + (start - end) * (1 + cos(pi * min(u / updates, 1))) / 2``;
- ``step``: ``values[k]`` where ``k`` counts the ``boundaries`` (updates) passed;
- ``gated`` (performance-based): ``values[level]``; the level goes up by one when the mean over
  the episodes that ended in an update of ``on`` (``primary_return``, or a term's episode sum)
  reaches ``thresholds[level]``.

Every number (start, end, updates, boundaries, values, thresholds) is a traced param under
``params['schedule'][path]``, so a change recompiles nothing and they can be vmapped; the kind
and ``on`` are static. The update count, the levels and the gate's per-env episode sums live in
the reward state (``ScheduleState``), so a resumed run continues the curriculum exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlx.rewards.base import PerEnv, RewardFn, check_terms, episode_totals

KINDS = ("linear", "cosine", "step", "gated")
# The numbers each kind takes (all traced), and the static ``on`` of ``gated``.
KEYS = {
    "linear": ("start", "end", "updates"),
    "cosine": ("start", "end", "updates"),
    "step": ("boundaries", "values"),
    "gated": ("thresholds", "values"),
}


class ScheduleState(NamedTuple):
    inner: Any
    updates: jax.Array  # [] int32: updates (reward applications of training) so far
    levels: dict  # path -> [] int32, the gated schedules' levels
    episode: PerEnv  # {path: [B]} running episode sums of each gated schedule's quantity


def params_of(entry: dict) -> dict:
    """A schedule's traced params from its resolved config entry."""
    kind = entry["kind"]
    if kind in ("linear", "cosine"):
        return {k: float(entry[k]) for k in ("start", "end", "updates")}
    out = {"values": np.asarray(entry["values"], np.float32)}
    if kind == "step":
        out["boundaries"] = np.asarray(entry["boundaries"], np.float32)
    else:
        out["thresholds"] = np.asarray(entry["thresholds"], np.float32)
    return out


def value(kind: str, p: dict, updates: jax.Array, level: jax.Array | None) -> jax.Array:
    """The scheduled value after ``updates`` updates (at ``level`` for gated)."""
    u = updates.astype(jnp.float32)
    if kind in ("linear", "cosine"):
        frac = jnp.clip(u / jnp.maximum(p["updates"], 1.0), 0.0, 1.0)
        if kind == "linear":
            return p["start"] + (p["end"] - p["start"]) * frac
        return p["end"] + (p["start"] - p["end"]) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    values = jnp.asarray(p["values"])
    if kind == "step":
        index = jnp.sum(u >= jnp.asarray(p["boundaries"])).astype(jnp.int32)
    else:
        index = level
    return values[jnp.minimum(index, values.shape[0] - 1)]


def get_path(tree: dict, path: str):
    for key in path.split("/"):
        tree = tree[key]
    return tree


def set_path(tree: dict, path: str, new) -> dict:
    head, _, rest = path.partition("/")
    return {**tree, head: set_path(tree[head], rest, new) if rest else new}


def _episodes(running: jax.Array, values: jax.Array, done: jax.Array):
    """(running' [B], sum over the episodes that ended of their totals [], their count [])."""
    running, totals, counts = episode_totals(running, values, done)
    return running, jnp.sum(totals), jnp.sum(counts)


def scheduled(inner: RewardFn, specs: dict[str, tuple[str, str]]) -> RewardFn:
    """``inner`` with the params at the paths of ``specs`` ({path: (kind, on)}) scheduled;
    its params are ``{**inner's, 'schedule': {path: params_of(entry)}}``."""
    gated = {path: on for path, (kind, on) in specs.items() if kind == "gated"}

    def init(key, term_names, num_envs):
        for path, on in gated.items():
            if on != "primary_return":
                check_terms([on], term_names, f"reward.schedule.{path}.on")
        zeros = jnp.zeros((num_envs,), jnp.float32)
        return ScheduleState(
            inner=inner.init(key, term_names, num_envs),
            updates=jnp.zeros((), jnp.int32),
            levels={path: jnp.zeros((), jnp.int32) for path in gated},
            episode=PerEnv({path: zeros for path in gated}),
        )

    def current(params, state) -> dict:
        return {
            path: value(kind, params["schedule"][path], state.updates, state.levels.get(path))
            for path, (kind, _) in specs.items()
        }

    def apply(params, state, transition, *, gamma):
        inner_params = {k: v for k, v in params.items() if k != "schedule"}
        for path, v in current(params, state).items():
            inner_params = set_path(inner_params, path, v)
        reward, inner_state, info = inner.apply(inner_params, state.inner, transition, gamma=gamma)
        done = jnp.logical_or(transition.terminated, transition.truncated)
        levels, sums = dict(state.levels), dict(state.episode.value)
        for path, on in gated.items():
            quantity = transition.primary if on == "primary_return" else transition.terms[on]
            sums[path], total, count = _episodes(sums[path], quantity.astype(jnp.float32), done)
            thresholds = jnp.asarray(params["schedule"][path]["thresholds"])
            level = levels[path]
            threshold = thresholds[jnp.minimum(level, thresholds.shape[0] - 1)]
            mean = total / jnp.maximum(count, 1.0)
            advance = (level < thresholds.shape[0]) & (count > 0) & (mean >= threshold)
            levels[path] = level + advance.astype(jnp.int32)
        new_state = ScheduleState(inner_state, state.updates + 1, levels, PerEnv(sums))
        return reward, new_state, info

    def metrics(params, state) -> dict:
        out = dict(inner.metrics(params, state.inner)) if inner.metrics is not None else {}
        out |= {f"schedule/{path}": v for path, v in current(params, state).items()}
        return out | {
            f"schedule/{path}/level": lv.astype(jnp.float32) for path, lv in state.levels.items()
        }

    return inner._replace(init=init, apply=apply, metrics=metrics)
