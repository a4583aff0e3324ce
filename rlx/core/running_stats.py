"""Running mean and variance (parallel Welford / Chan et al. merge of batch moments).

A leaf module (jax and flax only): the learner normalises observations with it and the reward
layer normalises terms with it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    """count: [] samples seen; mean, var: [size]."""

    count: jax.Array
    mean: jax.Array
    var: jax.Array


def init(size: int) -> RunningStats:
    return RunningStats(
        count=jnp.zeros((), jnp.float32),
        mean=jnp.zeros((size,), jnp.float32),
        var=jnp.ones((size,), jnp.float32),
    )


def update(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """Merges the moments of ``batch`` [N, size] into ``stats``."""
    batch_count = jnp.asarray(batch.shape[0], jnp.float32)
    batch_mean = jnp.mean(batch, axis=0)
    batch_var = jnp.var(batch, axis=0)
    total = stats.count + batch_count
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_var * batch_count
    m2 = m2 + delta**2 * stats.count * batch_count / total
    return RunningStats(count=total, mean=mean, var=m2 / total)


def normalize(stats: RunningStats, obs: jax.Array, clip: float = 10.0) -> jax.Array:
    """(obs - mean) / std, clipped to [-clip, clip]; identity before any update."""
    std = jnp.sqrt(stats.var + 1e-8)
    return jnp.clip((obs - stats.mean) / std, -clip, clip)
