"""Population search over reward params (the derivative-free baseline): exploit/explore.

``population_size`` PPO runs, each with its own phi (reward params, and a discount logit when
learned), train side by side as one vmapped program. Every meta-iteration each member runs
``inner_iterations`` PPO iterations; its fitness is the mean undiscounted primary return of the
training episodes it finished then (kept from before when none finished). Then the worst
``exploit_fraction`` of the members copy the policy, value, optimizer and normaliser state and
phi of members drawn from the best fraction (exploit) and perturb the copied phi's learned
leaves by Gaussian noise of scale ``perturb_scale`` (explore), as population-based training
does. Members start from phi_0 plus noise of scale ``init_scale`` (member 0 keeps phi_0).

``train.total_steps`` counts env steps per member: the population costs ``population_size``
times the env steps of one run.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlx import ppo as ppo_lib
from rlx.meta.learner import (
    Meta,
    MetaHparams,
    MetaStatic,
    _sum_or_mean,
    init_phi,
    learn_mask,
    phi_metrics,
    with_phi,
)


@struct.dataclass
class PopulationState:
    """train: TrainState with a leading [P] axis; phi [P, ...]; fitness [P]."""

    train: ppo_lib.TrainState
    phi: Any
    fitness: jax.Array
    key: jax.Array
    iteration: jax.Array


def _perturb(phi, mask, scale, key):
    leaves, treedef = jax.tree.flatten(phi)
    keys = jax.random.split(key, len(leaves))
    flags = jax.tree.leaves({"reward": mask, **{k: True for k in phi if k != "reward"}})
    noisy = [
        x + scale * jax.random.normal(k, x.shape, x.dtype) if flag else x
        for x, k, flag in zip(leaves, keys, flags, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def make_population(agent: ppo_lib.PPO, meta_static: MetaStatic, reward_params: Any) -> Meta:
    """Population-based search (see module docstring) around ``agent``."""
    size = meta_static.population_size
    num_replaced = int(size * meta_static.exploit_fraction)
    if size < 2 or not 1 <= num_replaced <= size // 2:
        raise ValueError(
            "meta: population search needs population_size >= 2 and exploit_fraction such "
            f"that 1 <= population_size * exploit_fraction <= population_size / 2, got "
            f"{size} x {meta_static.exploit_fraction}"
        )
    mask = learn_mask(reward_params, meta_static.learn)

    def init(key: jax.Array, hps) -> PopulationState:
        hparams, meta = hps
        k_train, k_phi, key = jax.random.split(key, 3)
        train = jax.vmap(agent.init, in_axes=(0, None))(
            jax.random.split(k_train, size), hparams.reward
        )
        phi0 = init_phi(hparams, meta_static.learn_gamma)
        phis = jax.vmap(lambda k: _perturb(phi0, mask, meta.init_scale, k))(
            jax.random.split(k_phi, size)
        )
        phis = jax.tree.map(lambda p, p0: p.at[0].set(p0), phis, phi0)
        return PopulationState(
            train=train,
            phi=phis,
            fitness=jnp.full((size,), -jnp.inf, jnp.float32),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
        )

    def member(train, phi, hparams):
        inner = with_phi(hparams, phi)
        return jax.lax.scan(
            lambda s, _: agent.train_step(s, inner),
            train,
            None,
            length=meta_static.inner_iterations,
        )

    def step(state: PopulationState, hps: tuple[ppo_lib.Hparams, MetaHparams]):
        hparams, meta = hps
        train, metrics = jax.vmap(member, in_axes=(0, 0, None))(state.train, state.phi, hparams)
        episodes = jnp.sum(metrics["episode_total/episodes"], axis=1)
        primary = jnp.sum(metrics["episode_total/primary_return"], axis=1)
        fitness = jnp.where(episodes > 0, primary / jnp.maximum(episodes, 1.0), state.fitness)
        key, k_pick, k_noise = jax.random.split(state.key, 3)
        order = jnp.argsort(fitness)  # worst first
        losers, winners = order[:num_replaced], order[size - num_replaced :]
        picked = jax.random.choice(k_pick, winners, (num_replaced,))
        source = jnp.arange(size).at[losers].set(picked)
        replaced = jnp.zeros((size,), bool).at[losers].set(True)
        copy = lambda tree: jax.tree.map(lambda x: x[source], tree)
        train = train.replace(
            params=copy(train.params),
            opt_state=copy(train.opt_state),
            obs_stats=copy(train.obs_stats),
            reward_state=copy(train.reward_state),
        )
        noisy = jax.vmap(lambda p, k: _perturb(p, mask, meta.perturb_scale, k))(
            copy(state.phi), jax.random.split(k_noise, size)
        )
        phi = jax.tree.map(
            lambda n, p: jnp.where(replaced.reshape((-1,) + (1,) * (n.ndim - 1)), n, p),
            noisy,
            copy(state.phi),
        )
        fitness = fitness[source]
        best = jnp.argmax(fitness)
        per_member = jax.vmap(_sum_or_mean)(metrics)
        # Episode totals summed over members, so the driver's totals/episodes is their mean.
        out = {
            k: jnp.sum(v) if k.startswith("episode_total/") else jnp.mean(v)
            for k, v in per_member.items()
        }
        best_phi = jax.tree.map(lambda x: x[best], phi)
        out |= {
            "meta/fitness_mean": jnp.mean(jnp.where(jnp.isfinite(fitness), fitness, jnp.nan)),
            "meta/fitness_best": fitness[best],
            "meta/replaced": jnp.asarray(num_replaced, jnp.float32),
        }
        out |= _best_phi_metrics(best_phi, hparams)
        new_state = PopulationState(
            train=train, phi=phi, fitness=fitness, key=key, iteration=state.iteration + 1
        )
        return new_state, out

    def _best_phi_metrics(phi, hparams):
        # The best member's phi leaves and gamma (no batch is kept to decode state-dependent
        # weights, so effective weights are not logged here).
        return phi_metrics(phi, agent.reward_fn._replace(weights=None), None, hparams)

    def chunk(state, hps, num_iterations: int):
        return jax.lax.scan(lambda s, _: step(s, hps), state, None, length=num_iterations)

    def evaluate(state: PopulationState, hps, key):
        hparams, _ = hps
        results = jax.vmap(lambda train, phi: agent.evaluate(train, with_phi(hparams, phi), key))(
            state.train, state.phi
        )
        best = jnp.argmax(state.fitness)
        out = {k: jnp.mean(v) for k, v in results.items()}
        out |= {f"{k}_best_member": v[best] for k, v in results.items()}
        return out

    return Meta(
        init=init,
        step=step,
        chunk=chunk,
        evaluate=evaluate,
        agent=agent,
        static=meta_static,
        mask=mask,
    )
