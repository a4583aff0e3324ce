"""The meta-learners' pieces built from PPO's public ones: the inner update whose gradient the
outer step takes (through its last ``grad_steps`` minibatch steps), and the primary critic V_p
trained with PPO's shuffled minibatches."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rlx.learn import acting
from rlx.learn import ppo as ppo_lib
from rlx.learn.networks import Value


def make_sgd(grad_steps: int, exact: bool) -> ppo_lib.SGD:
    """An ``sgd`` for ``ppo.update``: PPO's epochs x minibatches, with the optimizer's
    derivative exact or linearised (``exact``, see ``rlx.learn.optim``) and, when ``0 < grad_steps <
    epochs x minibatches``, the reward's gradient through the last ``grad_steps`` steps only.

    The forward values are PPO's own: the same minibatches in the same order, the same Adam.
    """

    def sgd(agent, params, opt_state, obs_stats, samples, hparams, learning_rate, key):
        total = agent.static.num_epochs * agent.static.num_minibatches
        tail = grad_steps if 0 < grad_steps < total else total
        if tail == total and not exact:  # PPO's own SGD: its derivative is the linearised one
            return ppo_lib.sgd(
                agent, params, opt_state, obs_stats, samples, hparams, learning_rate, key
            )
        optimizer = ppo_lib.make_optimizer(agent, hparams, learning_rate, exact)
        step = functools.partial(ppo_lib.minibatch_step, agent, optimizer, obs_stats, hparams)
        return _last_steps(agent, step, (params, opt_state), samples, key, tail)

    return sgd


def _last_steps(agent, step, carry, samples, key, tail: int):
    """PPO's minibatches in PPO's order, the steps before the last ``tail`` as constants (two
    scans, so the backward pass runs over the tail alone): (params', opt_state', metrics)."""
    static = agent.static
    total = static.num_epochs * static.num_minibatches
    shuffle = lambda k: ppo_lib.minibatches(samples, k, static.num_minibatches)
    batches = jax.vmap(shuffle)(jax.random.split(key, static.num_epochs))
    batches = jax.tree.map(lambda x: x.reshape((total,) + x.shape[2:]), batches)
    if tail == total:  # every step differentiated, from the incoming params on
        carry, metrics = jax.lax.scan(step, carry, batches)
        return *carry, jax.tree.map(jnp.mean, metrics)
    head = jax.tree.map(lambda x: jax.lax.stop_gradient(x[: total - tail]), batches)
    carry, first = jax.lax.scan(step, jax.lax.stop_gradient(carry), head)
    carry, last = jax.lax.scan(
        step, jax.lax.stop_gradient(carry), jax.tree.map(lambda x: x[total - tail :], batches)
    )
    metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, last)
    return *carry, jax.tree.map(jnp.mean, metrics)


def critic_update(
    agent: ppo_lib.PPO,
    critic_net: Value,
    critic: Any,
    opt_state: Any,
    obs_stats,
    obs: jax.Array,
    targets: jax.Array,
    learning_rate: jax.Array,
    key: jax.Array,
):
    """PPO's epochs x minibatches of Adam steps on 0.5 (V_p(s) - target)^2, over ``obs``
    [T, B, ...] and ``targets`` [T, B]: (critic', opt_state', mean loss)."""
    static = agent.static
    optimizer = optax.chain(optax.scale_by_adam(), optax.scale(-learning_rate))
    flat_obs = acting.normalize_obs(agent.actor, obs_stats, acting.steps_as_samples(obs))
    samples = {"obs": flat_obs, "targets": acting.steps_as_samples(targets)}

    def loss(c, batch):
        return 0.5 * jnp.mean((critic_net.apply(c, batch["obs"]) - batch["targets"]) ** 2)

    def minibatch_step(carry, batch):
        c, s = carry
        value, g = jax.value_and_grad(loss)(c, batch)
        updates, s = optimizer.update(g, s, c)
        return (optax.apply_updates(c, updates), s), value

    def epoch(carry, k):
        return jax.lax.scan(
            minibatch_step, carry, ppo_lib.minibatches(samples, k, static.num_minibatches)
        )

    (critic, opt_state), losses = jax.lax.scan(
        epoch, (critic, opt_state), jax.random.split(key, static.num_epochs)
    )
    return critic, opt_state, jnp.mean(losses)
