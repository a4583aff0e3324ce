"""GAE and the PPO loss, at module level so tests can reach them."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: jax.Array | float,
    gae_lambda: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over a time-major batch.

    Args:
      rewards: [T, B] rewards r_t from the RewardFn (gradients w.r.t. its params flow through).
      values: [T, B] V(s_t).
      next_values: [T, B] V(s'_t) of the pre-reset next observation.
      terminated: [T, B] s'_t is terminal: no bootstrap.
      truncated: [T, B] the time limit ended the episode at s'_t: bootstrap from V(s'_t).
      gamma, gae_lambda: discount and GAE lambda (traced scalars allowed).

    Returns:
      advantages [T, B] and value targets [T, B] (= advantages + values).

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t), and
    A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}, where done = terminated | truncated
    cuts the recursion at every episode boundary. The last step's A_{T} is its delta alone
    (its V(s'_T) bootstraps). Value estimates get ``stop_gradient``; rewards do not.
    """
    values = jax.lax.stop_gradient(values)
    next_values = jax.lax.stop_gradient(next_values)
    not_terminated = 1.0 - terminated.astype(rewards.dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(rewards.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values

    def backward(carry, inputs):
        delta, continues = inputs
        advantage = delta + gamma * gae_lambda * continues * carry
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True
    )
    return advantages, advantages + values


def normalized(advantages: jax.Array) -> jax.Array:
    """Advantages [N] at mean 0 and standard deviation 1 (for N > 1)."""
    # sqrt(var + tiny) rather than std(): the same value, but a finite derivative at zero
    # variance, which meta-gradients through the advantages need.
    std = jnp.sqrt(jnp.var(advantages) + 1e-16)
    return (advantages - advantages.mean()) / (std + 1e-8)


def ppo_loss(
    *,
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    value: jax.Array,
    targets: jax.Array,
    entropy: jax.Array,
    clip_epsilon: jax.Array | float,
    value_cost: jax.Array | float,
    entropy_cost: jax.Array | float,
    normalize_advantages: bool = True,
    old_value: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped-surrogate PPO loss over a minibatch (every array [N]).

    total = -mean(min(rho A, clip(rho, 1-eps, 1+eps) A))
            + value_cost * 0.5 * mean((V - target)^2) - entropy_cost * mean(entropy),
    with rho = exp(log_prob - old_log_prob) and A normalised per minibatch when asked. With
    ``old_value`` (the rollout's V [N]) the value term is clipped as CleanRL's ``clip_vloss``
    and rejax do: 0.5 * mean(max((V - target)^2, (V_clip - target)^2)), V_clip = old_value +
    clip(V - old_value, -eps, eps).
    """
    if normalize_advantages:
        advantages = normalized(advantages)
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
    policy_loss = -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))
    if old_value is None:
        value_loss = 0.5 * jnp.mean((value - targets) ** 2)
    else:
        clipped_value = old_value + jnp.clip(value - old_value, -clip_epsilon, clip_epsilon)
        value_loss = 0.5 * jnp.mean(
            jnp.maximum((value - targets) ** 2, (clipped_value - targets) ** 2)
        )
    entropy_mean = jnp.mean(entropy)
    total = policy_loss + value_cost * value_loss - entropy_cost * entropy_mean
    metrics = {
        "loss/total": total,
        "loss/policy": policy_loss,
        "loss/value": value_loss,
        "loss/entropy": entropy_mean,
        "loss/approx_kl": jnp.mean((ratio - 1.0) - jnp.log(ratio)),
        "loss/clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_epsilon).astype(jnp.float32)),
    }
    return total, metrics
