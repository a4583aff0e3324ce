"""Action distributions: discrete vs continuous is this choice, not a copied algorithm.

A ``Distribution`` is a NamedTuple of pure functions over distribution parameters
``dist_params [..., param_size]`` produced by the policy network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.core.types import Box, Discrete


class Distribution(NamedTuple):
    """param_size: size of the policy head's output.
    sample(dist_params [..., P], key) -> raw action [...] or [..., A].
    log_prob(dist_params, raw) -> [...].
    entropy(dist_params) -> [...].
    mode(dist_params) -> raw action (deterministic evaluation).
    to_env(raw) -> the action the env takes.
    kl(p_params, q_params) -> [...] KL(p || q), closed form (a bootstrapped meta-gradient's
    matching loss).
    noise(key, batch_shape) -> the random draw a sample takes for params of shape
    [*batch_shape, P] (Gumbel noise [*batch_shape, P] for a categorical, standard normal
    [*batch_shape, A] for a Gaussian).
    from_noise(dist_params, noise) -> raw action: ``sample(p, key) ==
    from_noise(p, noise(key, p.shape[:-1]))``, so a rollout can draw all its steps' noise in one
    vectorised call before its scan instead of one small call per step. The same draws; inside
    a larger compiled program the Gaussian's ``mean + std * noise`` can round differently in
    the last bit (XLA fuses it differently once the noise is its own array), the categorical's
    argmax cannot.
    """

    param_size: int
    sample: Callable
    log_prob: Callable
    entropy: Callable
    mode: Callable
    to_env: Callable
    kl: Callable
    noise: Callable
    from_noise: Callable


def categorical(num_actions: int) -> Distribution:
    """Categorical over ``num_actions``; params are logits [..., num_actions]."""

    def log_prob(logits, action):
        logp = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(logits):
        logp = jax.nn.log_softmax(logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def kl(p_logits, q_logits):
        logp, logq = jax.nn.log_softmax(p_logits), jax.nn.log_softmax(q_logits)
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)

    # jax.random.categorical(key, logits) is argmax(gumbel(key, logits.shape) + logits): the
    # same two steps, split so the noise can be drawn ahead.
    def noise(key, batch_shape):
        return jax.random.gumbel(key, (*batch_shape, num_actions), jnp.float32)

    def from_noise(logits, gumbel):
        return jnp.argmax(gumbel.astype(logits.dtype) + logits, axis=-1).astype(jnp.int32)

    return Distribution(
        param_size=num_actions,
        sample=lambda logits, key: from_noise(logits, noise(key, logits.shape[:-1])),
        log_prob=log_prob,
        entropy=entropy,
        mode=lambda logits: jnp.argmax(logits, axis=-1).astype(jnp.int32),
        to_env=lambda action: action,
        kl=kl,
        noise=noise,
        from_noise=from_noise,
    )


def tanh_normal(size: int, low: float, high: float) -> Distribution:
    """Gaussian squashed by tanh and rescaled to [low, high]; params are [mean, log_std].

    The raw (pre-tanh) sample is what the rollout stores, so log-probabilities are exact.
    The entropy bonus uses the base Gaussian's entropy (closed form; the tanh correction has
    none), as rejax and many PPO implementations do.
    """

    def split(params):
        mean, log_std = jnp.split(params, 2, axis=-1)
        return mean, jnp.clip(log_std, -5.0, 2.0)

    def noise(key, batch_shape):
        return jax.random.normal(key, (*batch_shape, size))

    def from_noise(params, eps):
        mean, log_std = split(params)
        return mean + jnp.exp(log_std) * eps

    def sample(params, key):
        return from_noise(params, noise(key, params.shape[:-1]))

    def log_prob(params, raw):
        mean, log_std = split(params)
        gaussian = (
            -0.5 * ((raw - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
        )
        # log |d tanh(x)/dx| = log(1 - tanh(x)^2), in a numerically stable form.
        log_det = 2.0 * (jnp.log(2.0) - raw - jax.nn.softplus(-2.0 * raw))
        return jnp.sum(gaussian - log_det, axis=-1)

    def entropy(params):
        _, log_std = split(params)
        return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)

    def kl(p_params, q_params):
        # tanh is a bijection, so the KL of the squashed distributions is the base Gaussians'.
        (pm, pl), (qm, ql) = split(p_params), split(q_params)
        ratio = jnp.exp(2.0 * (pl - ql))
        terms = ql - pl + 0.5 * (ratio + ((pm - qm) / jnp.exp(ql)) ** 2 - 1.0)
        return jnp.sum(terms, axis=-1)

    def to_env(raw):
        return low + (jnp.tanh(raw) + 1.0) * 0.5 * (high - low)

    return Distribution(
        param_size=2 * size,
        sample=sample,
        log_prob=log_prob,
        entropy=entropy,
        mode=lambda params: split(params)[0],
        to_env=to_env,
        kl=kl,
        noise=noise,
        from_noise=from_noise,
    )


def for_action_space(space: Discrete | Box) -> Distribution:
    if isinstance(space, Discrete):
        return categorical(space.num_actions)
    if isinstance(space, Box):
        return tanh_normal(space.size, space.low, space.high)
    raise TypeError(f"unsupported action space {space!r}")
