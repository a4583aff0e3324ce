"""Gradient meta-learners around PPO: one jitted meta-iteration, scanned into chunks.

The outer parameters phi are the reward layer's params (the leaves chosen by
``MetaStatic.learn``) plus, optionally, a discount logit for the inner learner (gamma_phi =
sigmoid(logit)). The outer objective is the discounted return of the env's ``primary`` with a
fixed outer discount, for the policy the inner PPO produces, estimated on the *next* rollout of
that policy with a separate primary critic V_p (as meta-gradient RL does), so no extra rollout
is needed: the rollout that scores an update is the next update's data.

A meta-iteration runs ``inner_iterations`` PPO updates, each followed by the rollout of the
updated policy, then the outer step. One function per method computes the outer gradient:

- ``one_step`` (LIRPG, MGRL): through the last PPO update (its epochs x minibatches of Adam
  steps, the optax update itself included; the last ``grad_steps`` of them when set);
- ``unrolled``: through all ``inner_iterations`` updates (truncated backprop; the rollouts in
  between are data, the params they were collected with are not differentiated), each update
  rematerialised with ``jax.checkpoint`` when ``remat``;
- ``implicit`` (BARFI): the implicit-function-theorem gradient at the last policy, H^-1 by a
  Neumann series of ``neumann_steps`` terms with step ``neumann_alpha``, Hessian-vector
  products forward-over-reverse on the inner PPO loss of the freshest batch.

With ``bootstrap_steps`` L > 0, ``one_step`` and ``unrolled`` become BMG (Flennerhag et al.
2022, ``_bootstrapped``): the differentiated update(s) are matched to a target L plain updates
further plus ``bootstrap_step_size`` steps up the primary policy gradient; a meta-iteration is
then ``inner_iterations + L`` PPO iterations.

The outer loss is L_out(theta) = -mean(pi_theta(a|s) / pi_old(a|s) * A_p), the policy-gradient
surrogate of the primary objective with A_p = GAE(primary, V_p, outer_gamma, outer_lambda)
normalised over the batch, plus ``l2 * |phi|^2`` over the learned reward leaves,
``gamma_l2 * gamma_phi`` (BARFI's discount penalty) and the reward's own Lipschitz penalty.
phi moves by Adam (``outer_learning_rate``) after ``warmup`` meta-iterations; the outer gradient
is clipped to ``outer_max_grad_norm`` first (0: never), and the step size may decay over the
run (``outer_schedule``: constant, linear or cosine, to ``outer_final_fraction`` of it).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlx.core import sharding
from rlx.core.types import PyTree
from rlx.learn import acting, optim
from rlx.learn import ppo as ppo_lib
from rlx.learn.losses import compute_gae
from rlx.learn.networks import Value
from rlx.meta import grads
from rlx.meta.base import (
    Hps,
    MetaHparams,
    MetaStatic,
    clip_outer_gradient,
    clip_to_box,
    init_phi,
    learn_mask,
    outer_step_size,
    phi_metrics,
    sum_or_mean,
    with_phi,
)
from rlx.meta.inner import critic_update, make_sgd


@struct.dataclass
class MetaState:
    """A gradient meta-learner's carry: the inner run, its pending batch, V_p, phi, Adam."""

    train: ppo_lib.TrainState
    batch: ppo_lib.Batch
    critic: PyTree
    critic_opt: PyTree
    phi: PyTree
    outer_opt: PyTree
    iteration: jax.Array


class OuterGradient(NamedTuple):
    """What a method's inner updates and outer gradient leave for the outer step."""

    train: ppo_lib.TrainState  # the inner run after the updates
    batch: ppo_lib.Batch  # the rollout of the updated policy (scores it; the next update's data)
    metrics: dict  # the inner updates' metrics, stacked over them
    loss: jax.Array  # L_out at the updated policy
    advantages: jax.Array  # A_p [T, B]
    targets: jax.Array  # V_p targets [T, B]
    d_phi: PyTree  # dL_out / dphi, before the regulariser
    extra: dict | None = None  # [] metrics of the method's own (BMG: meta/bootstrap_kl)


@dataclasses.dataclass(frozen=True)
class GradientMeta:
    """A gradient meta-learner: the inner PPO, its settings and the method's outer gradient
    (``one_step``, ``unrolled`` or ``implicit`` of this module)."""

    agent: ppo_lib.PPO
    static: MetaStatic
    mask: PyTree
    critic_net: Value
    sgd: ppo_lib.SGD
    outer_gradient: Callable[[GradientMeta, MetaState, Hps], OuterGradient]
    env_batch_split: ClassVar[bool] = True  # one learner, its env batch over the devices

    @functools.cached_property
    def _jitted_init(self):
        return jax.jit(functools.partial(init, self))

    def init(self, key: jax.Array, hps: Hps) -> MetaState:
        return self._jitted_init(key, hps)

    def step(self, state: MetaState, hps: Hps) -> tuple[MetaState, dict]:
        return outer_step(self, state, hps, self.outer_gradient(self, state, hps))

    def chunk(self, state: MetaState, hps: Hps, num_iterations: int):
        return jax.lax.scan(lambda s, _: self.step(s, hps), state, None, length=num_iterations)

    def evaluate(self, state: MetaState, hps: Hps, key: jax.Array) -> dict:
        hparams = hps.inner
        return self.agent.evaluate(state.train, with_phi(hparams, state.phi), key)

    def learner(self, state: MetaState, hps: Hps, member: int | None = None):
        """(the inner TrainState, its Hparams under phi, None): one learner, no members."""
        if member is not None:
            raise ValueError("--member picks a population member; this meta run has one learner")
        return state.train, with_phi(hps.inner, state.phi), None

    def shardings(self, state: MetaState, mesh: Mesh) -> MetaState:
        """The inner run's env batch and the pending batch ([T, B]) split over the devices,
        the rest replicated (a recurrent policy's replay inputs too)."""
        whole = sharding.replicated(mesh)
        over_envs = NamedSharding(mesh, PartitionSpec(None, sharding.BATCH_AXIS))
        batch = state.batch
        return jax.tree.map(lambda _: whole, state).replace(
            train=sharding.state_shardings(state.train, mesh),
            batch=batch._replace(
                traj=jax.tree.map(lambda _: over_envs, batch.traj),
                next_values=over_envs,
                key=whole,
                replay=jax.tree.map(lambda _: whole, batch.replay),  # a recurrent policy's
            ),
        )

    def devices_problem(self, devices: int) -> str | None:
        """The env batch is split over the devices: its size must be a multiple of theirs."""
        num_envs = self.agent.static.num_envs
        if num_envs % devices:
            return (
                f"key 'train.num_envs': {num_envs} must be a multiple of the {devices} devices "
                "(the env batch is split evenly over them)"
            )
        return None


def make_gradient_meta(agent: ppo_lib.PPO, meta_static: MetaStatic, reward_params: PyTree):
    """The gradient meta-learner ``meta_static.method`` around ``agent``."""
    methods = OUTER_GRADIENTS
    if meta_static.method not in methods:
        raise ValueError(f"make_gradient_meta: {meta_static.method!r} is not a gradient method")
    return GradientMeta(
        agent=agent,
        static=meta_static,
        mask=learn_mask(reward_params, meta_static.learn),
        critic_net=Value(
            meta_static.critic_hidden, agent.static.activation, agent.static.kernel_init
        ),
        sgd=make_sgd(meta_static.grad_steps, meta_static.exact_gradient),
        outer_gradient=methods[meta_static.method],
    )


def _outer_optimizer(learning_rate):
    return optax.chain(optax.scale_by_adam(), optax.scale(-learning_rate))


def init(meta: GradientMeta, key: jax.Array, hps: Hps) -> MetaState:
    hparams = hps.inner
    k_train, k_critic = jax.random.split(key)
    train = meta.agent.init(k_train, hparams.reward_params)
    train, batch = ppo_lib.collect(meta.agent, train)
    critic = meta.critic_net.init(k_critic, jnp.zeros_like(train.env_state.obs[0]))
    phi = init_phi(hparams, meta.static.learn_gamma)
    return MetaState(
        train=train,
        batch=batch,
        critic=critic,
        critic_opt=optax.adam(1.0).init(critic),
        phi=phi,
        outer_opt=_outer_optimizer(1.0).init(phi),
        iteration=jnp.zeros((), jnp.int32),
    )


def primary_advantages(meta: GradientMeta, critic, obs_stats, batch, meta_hparams: MetaHparams):
    """GAE of the primary objective under V_p: (advantages [T, B], targets [T, B])."""
    traj = batch.traj
    both = meta.critic_net.apply(
        critic,
        acting.normalize_obs(meta.agent.actor, obs_stats, jnp.stack([traj.obs, traj.next_obs])),
    )
    return compute_gae(
        traj.primary,
        both[0],
        both[1],
        traj.terminated,
        traj.truncated,
        meta_hparams.outer_gamma,
        meta_hparams.outer_lambda,
    )


def outer_loss(meta: GradientMeta, params, obs_stats, batch, advantages) -> jax.Array:
    """-mean(ratio * A_p): its gradient at the collecting policy is the primary PG."""
    traj = batch.traj
    actor = meta.agent.actor
    dist_params = acting.rollout_policy_params(actor, params, obs_stats, traj.obs, batch.replay)
    log_prob = meta.agent.dist.log_prob(dist_params, traj.action)
    ratio = jnp.exp(log_prob - jax.lax.stop_gradient(traj.log_prob))
    adv = (advantages - advantages.mean()) / (jnp.std(advantages) + 1e-8)
    return -jnp.mean(ratio * jax.lax.stop_gradient(adv))


def _plain_iterations(meta: GradientMeta, carry, hparams, phi, length: int):
    """``length`` inner updates under ``phi`` from ``carry`` = (train, batch), each followed by
    a rollout, not differentiated: ((train, batch), metrics stacked over them)."""
    inner = with_phi(hparams, phi)

    def body(carry, _):
        train, batch = carry
        train, metrics = ppo_lib.update(meta.agent, train, batch, inner, sgd=meta.sgd)
        train, batch = ppo_lib.collect(meta.agent, train)
        return (train, batch), metrics

    return jax.lax.scan(body, carry, None, length=length)


def _through_updates(meta: GradientMeta, state: MetaState, hps: Hps, plain: int, remat: bool):
    """``plain`` inner updates as data, then the rest differentiated: the outer gradient
    backpropagated through the differentiated updates (``one_step`` and ``unrolled``), or,
    with ``bootstrap_steps``, the bootstrapped one (``_bootstrapped``)."""
    hparams, meta_hparams = hps.inner, hps.outer
    carry, metrics_plain = _plain_iterations(
        meta, (state.train, state.batch), hparams, state.phi, plain
    )

    def body(carry, phi):
        train, batch = carry
        train, metrics = ppo_lib.update(
            meta.agent, train, batch, with_phi(hparams, phi), sgd=meta.sgd
        )
        collected, batch = ppo_lib.collect(meta.agent, jax.lax.stop_gradient(train))
        train = train.replace(env_state=collected.env_state, key=collected.key)
        return (train.with_policy_carry(collected.policy_carry), batch), metrics

    def forward(phi):
        (train, batch), metrics = grads.unroll(
            body, carry, phi, meta.static.inner_iterations - plain, remat=remat
        )
        return train.params, (train, batch, metrics)

    if meta.static.bootstrap_steps:
        out = _bootstrapped(meta, state, hps, forward)
    else:
        _, vjp_fn, (train, batch, metrics) = jax.vjp(forward, state.phi, has_aux=True)
        advantages, targets = primary_advantages(
            meta, state.critic, train.obs_stats, batch, meta_hparams
        )
        loss, g = jax.value_and_grad(functools.partial(outer_loss, meta))(
            train.params, train.obs_stats, batch, advantages
        )
        (d_phi,) = vjp_fn(g)
        out = OuterGradient(train, batch, metrics, loss, advantages, targets, d_phi)
    if plain:
        cat = lambda a, b: jnp.concatenate([a, b])
        out = out._replace(metrics=jax.tree.map(cat, metrics_plain, out.metrics))
    return out


def _bootstrapped(meta: GradientMeta, state: MetaState, hps: Hps, forward) -> OuterGradient:
    """BMG (Flennerhag et al. 2022) around ``forward`` (phi -> (theta_K, (train, batch,
    metrics))), the K differentiated updates. The target: ``bootstrap_steps`` = L more plain
    updates under phi from theta_K (each with its rollout: the run goes on from there, no env
    step is spent on the target alone), then ``bootstrap_step_size`` preconditioned steps along
    the primary policy gradient at theta_{K+L} (its surrogate on the freshest rollout, the
    inner Adam's second moment as the preconditioner). The outer loss is the matching loss
    mean_s KL(pi_target(.|s) || pi_theta_K(phi)(.|s)) over that rollout's states, each policy
    with its own observation normaliser, and its gradient reaches phi through theta_K only."""
    hparams, meta_hparams = hps.inner, hps.outer

    def extend(theta_k, aux):
        del theta_k
        train, batch, _ = aux
        (train, batch), metrics = _plain_iterations(
            meta, (train, batch), hparams, state.phi, meta.static.bootstrap_steps
        )
        advantages, targets = primary_advantages(
            meta, state.critic, train.obs_stats, batch, meta_hparams
        )
        loss, g = jax.value_and_grad(functools.partial(outer_loss, meta))(
            train.params, train.obs_stats, batch, advantages
        )
        target = _primary_step(train, g, hparams, meta_hparams.bootstrap_step_size)
        return target, (train, batch, metrics, loss, advantages, targets)

    def match(target, theta_k, aux, extra):
        train_k, train, batch = aux[0], extra[0], extra[1]
        obs = batch.traj.obs
        actor, dist = meta.agent.actor, meta.agent.dist
        p = acting.rollout_policy_params(actor, target, train.obs_stats, obs, batch.replay)
        q = acting.rollout_policy_params(actor, theta_k, train_k.obs_stats, obs, batch.replay)
        return jnp.mean(dist.kl(p, q))

    d_phi, mu, _, (aux, extra) = grads.bootstrapped_grad(forward, state.phi, extend, match)
    train, batch, metrics_boot, loss, advantages, targets = extra
    metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), aux[2], metrics_boot)
    extras = {"meta/bootstrap_kl": mu}
    return OuterGradient(train, batch, metrics, loss, advantages, targets, d_phi, extras)


def _primary_step(train: ppo_lib.TrainState, g, hparams, step_size) -> dict:
    """The policy params after ``step_size`` steps of -lr g / (sqrt(nu_hat) + eps) (the inner
    Adam's bias-corrected second moment, PPO's gradient clipping): BMG's final target step."""
    adam = next(s for s in train.opt_state if isinstance(s, optax.ScaleByAdamState))
    norm = optax.tree_utils.tree_norm(g)
    clip = jnp.minimum(1.0, hparams.max_grad_norm / jnp.maximum(norm, 1e-12))
    correction = 1.0 - optim.B2 ** jnp.maximum(adam.count, 1).astype(jnp.float32)
    scale = step_size * hparams.learning_rate * clip

    def move(p, gi, nu):
        return p - scale * gi / (jnp.sqrt(nu / correction + optim.EPS_ROOT) + optim.EPS)

    policy = jax.tree.map(move, train.params["policy"], g["policy"], adam.nu["policy"])
    return {**train.params, "policy": policy}


def one_step(meta: GradientMeta, state: MetaState, hps: Hps) -> OuterGradient:
    """Through the last of the ``inner_iterations`` updates (the ones before are data)."""
    return _through_updates(meta, state, hps, meta.static.inner_iterations - 1, remat=False)


def unrolled(meta: GradientMeta, state: MetaState, hps: Hps) -> OuterGradient:
    """Through all ``inner_iterations`` updates, each rematerialised when ``remat``."""
    return _through_updates(meta, state, hps, 0, remat=meta.static.remat)


def implicit(meta: GradientMeta, state: MetaState, hps: Hps) -> OuterGradient:
    """The implicit-function-theorem gradient at the policy after ``inner_iterations`` plain
    updates, H^-1 by a Neumann series on the inner PPO loss of the freshest batch."""
    hparams, meta_hparams = hps.inner, hps.outer
    (train, batch), metrics = _plain_iterations(
        meta, (state.train, state.batch), hparams, state.phi, meta.static.inner_iterations
    )
    advantages, targets = primary_advantages(
        meta, state.critic, train.obs_stats, batch, meta_hparams
    )
    loss, g = jax.value_and_grad(functools.partial(outer_loss, meta))(
        train.params, train.obs_stats, batch, advantages
    )

    def inner_grad(params, phi):
        hp = with_phi(hparams, phi)
        samples, *_ = ppo_lib.samples_of(meta.agent, batch, hp, train.reward_state)
        return jax.grad(lambda p: ppo_lib.loss(meta.agent, p, train.obs_stats, samples, hp)[0])(
            params
        )

    d_phi = grads.implicit_grad(
        inner_grad,
        train.params,
        state.phi,
        g,
        num_terms=meta.static.neumann_steps,
        alpha=meta_hparams.neumann_alpha,
    )
    return OuterGradient(train, batch, metrics, loss, advantages, targets, d_phi)


def regularizer(meta: GradientMeta, phi, traj, meta_hparams: MetaHparams) -> jax.Array:
    """l2 * |learned reward params|^2 + gamma_l2 * gamma_phi + the reward's own penalty."""
    learned = jax.tree.map(lambda x, m: x * m, phi.reward_params, meta.mask)
    total = meta_hparams.l2 * sum(jnp.sum(x**2) for x in jax.tree.leaves(learned))
    if phi.gamma_logit is not None:
        total = total + meta_hparams.gamma_l2 * jax.nn.sigmoid(phi.gamma_logit)
    if meta.agent.reward_fn.penalty is not None:
        total = total + meta.agent.reward_fn.penalty(phi.reward_params, traj)
    return total


def outer_step(meta: GradientMeta, state: MetaState, hps: Hps, out: OuterGradient):
    """phi's Adam step (after the warmup) on the masked outer gradient plus the regulariser's,
    then the primary critic's epochs on the new batch: (MetaState', metrics)."""
    hparams, meta_hparams = hps.inner, hps.outer
    phi, batch, train = state.phi, out.batch, out.train
    reg, d_reg = jax.value_and_grad(functools.partial(regularizer, meta))(
        phi, batch.traj, meta_hparams
    )
    d_phi = jax.tree.map(jnp.add, out.d_phi, d_reg)
    masked = jax.tree.map(lambda x, m: x * m, d_phi.reward_params, meta.mask)
    d_phi = d_phi.replace(reward_params=masked)
    step_size = outer_step_size(meta.static, state.iteration, meta_hparams)
    clipped = clip_outer_gradient(d_phi, meta_hparams.outer_max_grad_norm)
    updates, outer_opt = _outer_optimizer(step_size).update(clipped, state.outer_opt, phi)
    active = (state.iteration >= meta.static.warmup).astype(jnp.float32)
    phi = optax.apply_updates(phi, jax.tree.map(lambda u: active * u, updates))
    phi = clip_to_box(phi, hparams.reward_params, meta.mask, meta_hparams.search_radius)
    key, critic_key = jax.random.split(train.key)
    critic, critic_opt, critic_loss = critic_update(
        meta.agent,
        meta.critic_net,
        state.critic,
        state.critic_opt,
        train.obs_stats,
        batch.traj.obs,
        out.targets,
        meta_hparams.critic_learning_rate,
        critic_key,
    )
    metrics = sum_or_mean(out.metrics)
    metrics |= {
        "meta/outer_loss": out.loss,
        "meta/regularizer": reg,
        "meta/grad_norm": optax.tree_utils.tree_norm(d_phi),
        "meta/critic_loss": critic_loss,
        "meta/primary_advantage_mean": jnp.mean(out.advantages),
    }
    if meta.static.outer_schedule != "constant":
        metrics["meta/outer_step_size"] = step_size
    metrics |= out.extra or {}
    metrics |= phi_metrics(phi, meta.agent.reward_fn, batch.traj, hparams)
    new_state = MetaState(
        train=train.replace(key=key),
        batch=batch,
        critic=critic,
        critic_opt=critic_opt,
        phi=phi,
        outer_opt=outer_opt,
        iteration=state.iteration + 1,
    )
    return new_state, metrics


# The gradient methods by name: each one's outer gradient (``GradientMeta.outer_gradient``).
OUTER_GRADIENTS = {"one_step": one_step, "unrolled": unrolled, "implicit": implicit}
