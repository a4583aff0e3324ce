"""Bilevel reward optimisation around PPO: one jitted meta-iteration, scanned into chunks.

The outer parameters phi are the reward layer's params (``hparams.reward``, the leaves chosen
by ``MetaStatic.learn``) plus, optionally, a discount logit for the inner learner
(gamma_phi = sigmoid(logit)). The outer objective is the discounted return of the env's
``primary`` with a fixed outer discount, for the policy the inner PPO produces, estimated on the
*next* rollout of that policy with a separate primary critic V_p (as meta-gradient RL does), so
no extra rollout is needed: the rollout that scores an update is the next update's data.

A meta-iteration (gradient methods) runs ``inner_iterations`` PPO updates, each followed by the
rollout of the updated policy, then the outer step:

- ``one_step`` (LIRPG, MGRL): the gradient goes through the last PPO update (its epochs x
  minibatches of Adam steps, the optax update itself included);
- ``unrolled``: through all ``inner_iterations`` updates (truncated backprop; the rollouts in
  between are data, the params they were collected with are not differentiated), each update
  rematerialised with ``jax.checkpoint`` when ``remat``;
- ``implicit`` (BARFI): the implicit-function-theorem gradient at the last policy, H^-1 by a
  Neumann series of ``neumann_steps`` terms with step ``neumann_alpha``, Hessian-vector
  products forward-over-reverse on the inner PPO loss of the freshest batch.

The outer loss is L_out(theta) = -mean(pi_theta(a|s) / pi_old(a|s) * A_p), the policy-gradient
surrogate of the primary objective with A_p = GAE(primary, V_p, outer_gamma, outer_lambda)
normalised over the batch, plus ``l2 * |phi|^2`` over the learned reward leaves,
``gamma_l2 * gamma_phi`` (BARFI's discount penalty) and the reward's own Lipschitz penalty.
phi moves by Adam (``outer_learning_rate``) after ``warmup`` meta-iterations.

``population`` (the derivative-free baseline) is in ``rlx.meta.population``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import ppo as ppo_lib
from rlx.losses import compute_gae
from rlx.meta import grads
from rlx.networks import Value

METHODS = ("one_step", "unrolled", "implicit", "population")


@dataclasses.dataclass(frozen=True)
class MetaStatic:
    """Static meta settings (changing one recompiles)."""

    method: str = "one_step"
    inner_iterations: int = 1
    remat: bool = True
    learn: tuple[str, ...] = ()
    learn_gamma: bool = False
    neumann_steps: int = 5
    critic_hidden: tuple[int, ...] = (64, 64)
    warmup: int = 0
    population_size: int = 8
    exploit_fraction: float = 0.25


@struct.dataclass
class MetaHparams:
    """Traced outer hyperparameters (float32 scalars)."""

    outer_learning_rate: jax.Array
    outer_gamma: jax.Array
    outer_lambda: jax.Array
    l2: jax.Array
    gamma_l2: jax.Array
    critic_learning_rate: jax.Array
    neumann_alpha: jax.Array
    perturb_scale: jax.Array
    init_scale: jax.Array


def make_meta_hparams(**values: float) -> MetaHparams:
    return MetaHparams(**{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})


@struct.dataclass
class MetaState:
    """A gradient meta-learner's carry: the inner run, its pending batch, V_p, phi, Adam."""

    train: ppo_lib.TrainState
    batch: ppo_lib.Batch
    critic: Any
    critic_opt: Any
    phi: Any
    outer_opt: Any
    iteration: jax.Array


def path_name(path) -> str:
    """'combine/pd_anti' for a key path of dict keys / sequence indices."""
    parts = []
    for entry in path:
        for attr in ("key", "idx", "name"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
    return "/".join(parts)


def learn_mask(reward_params: Any, learn: tuple[str, ...]) -> Any:
    """A pytree of bools like ``reward_params``: True where a leaf's path starts with one of
    ``learn`` (all leaves when ``learn`` is empty). Raises ValueError naming an entry that
    matches nothing, with the paths there are."""
    leaves = jax.tree_util.tree_leaves_with_path(reward_params)
    names = [path_name(p) for p, _ in leaves]

    def chosen(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + "/")

    for i, prefix in enumerate(learn):
        if not any(chosen(n, prefix) for n in names):
            raise ValueError(
                f"meta.learn[{i}]: {prefix!r} names no reward param (the params are: "
                f"{', '.join(names)})"
            )
    flags = [not learn or any(chosen(n, p) for p in learn) for n in names]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(reward_params), flags)


def init_phi(hparams: ppo_lib.Hparams, learn_gamma: bool) -> dict:
    phi = {"reward": hparams.reward}
    if learn_gamma:
        gamma = jnp.clip(hparams.gamma, 1e-4, 1 - 1e-4)
        phi["gamma_logit"] = jnp.log(gamma) - jnp.log1p(-gamma)
    return phi


def with_phi(hparams: ppo_lib.Hparams, phi: dict) -> ppo_lib.Hparams:
    """The inner learner's Hparams under phi (reward params, and gamma if learned)."""
    hparams = hparams.replace(reward=phi["reward"])
    if "gamma_logit" in phi:
        hparams = hparams.replace(gamma=jax.nn.sigmoid(phi["gamma_logit"]))
    return hparams


def phi_metrics(phi: dict, reward_fn, transition, hparams: ppo_lib.Hparams) -> dict:
    """phi's scalar leaves (``phi/<path>``; a norm for array leaves), the effective weights
    (``weights/<term>``, decoded and averaged over the batch) and the inner gamma."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(phi["reward"]):
        name = path_name(path)
        if leaf.ndim == 0:
            out[f"phi/{name}"] = leaf
        else:
            out[f"phi/{name}/norm"] = jnp.linalg.norm(leaf)
    if reward_fn.weights is not None:
        out |= {f"weights/{k}": v for k, v in reward_fn.weights(phi["reward"], transition).items()}
    out["meta/gamma"] = with_phi(hparams, phi).gamma
    return out


def _outer_optimizer(learning_rate):
    return optax.chain(optax.scale_by_adam(), optax.scale(-learning_rate))


def _sum_or_mean(metrics: dict) -> dict:
    """Reduces metrics stacked over inner iterations: episode totals add, the rest average."""
    return {
        k: jnp.sum(v, 0) if k.startswith("episode_total/") else jnp.mean(v, 0)
        for k, v in metrics.items()
    }


class Meta(NamedTuple):
    """The meta-learner's pure functions; ``step``/``chunk`` take (state, (hparams, meta))."""

    init: Any
    step: Any
    chunk: Any
    evaluate: Any
    agent: ppo_lib.PPO
    static: MetaStatic
    mask: Any


def make_meta(agent: ppo_lib.PPO, meta_static: MetaStatic, reward_params: Any) -> Meta:
    """A gradient meta-learner (one_step, unrolled, implicit) around ``agent``."""
    if meta_static.method not in ("one_step", "unrolled", "implicit"):
        raise ValueError(f"make_meta: method {meta_static.method!r} is not a gradient method")
    static, dist, reward_fn = agent.static, agent.dist, agent.reward_fn
    critic_net = Value(meta_static.critic_hidden, static.activation)
    mask = learn_mask(reward_params, meta_static.learn)
    num_samples = static.batch_size
    minibatch = num_samples // static.num_minibatches
    k_inner = meta_static.inner_iterations

    def init(key: jax.Array, hps: tuple[ppo_lib.Hparams, MetaHparams]) -> MetaState:
        hparams, _ = hps
        k_train, k_critic = jax.random.split(key)
        train = agent.init(k_train, hparams.reward)
        train, batch = agent.collect(train)
        obs = jnp.zeros_like(train.env_state.obs[0])
        critic = critic_net.init(k_critic, obs)
        phi = init_phi(hparams, meta_static.learn_gamma)
        return MetaState(
            train=train,
            batch=batch,
            critic=critic,
            critic_opt=optax.adam(1.0).init(critic),
            phi=phi,
            outer_opt=_outer_optimizer(1.0).init(phi),
            iteration=jnp.zeros((), jnp.int32),
        )

    def primary_advantages(critic, obs_stats, batch: ppo_lib.Batch, meta: MetaHparams):
        traj = batch.traj
        both = critic_net.apply(
            critic, agent.prepare(obs_stats, jnp.stack([traj.obs, traj.next_obs]))
        )
        return compute_gae(
            traj.primary,
            both[0],
            both[1],
            traj.terminated,
            traj.truncated,
            meta.outer_gamma,
            meta.outer_lambda,
        )

    def outer_loss(params, obs_stats, batch: ppo_lib.Batch, advantages):
        """-mean(ratio * A_p): its gradient at the collecting policy is the primary PG."""
        traj = batch.traj
        log_prob = dist.log_prob(agent.policy_of(params, obs_stats, traj.obs), traj.action)
        ratio = jnp.exp(log_prob - jax.lax.stop_gradient(traj.log_prob))
        adv = (advantages - advantages.mean()) / (jnp.std(advantages) + 1e-8)
        return -jnp.mean(ratio * jax.lax.stop_gradient(adv))

    def critic_update(critic, opt_state, obs_stats, obs, targets, meta: MetaHparams, key):
        """num_epochs x num_minibatches Adam steps of 0.5 (V_p(s) - target)^2."""
        optimizer = optax.chain(optax.scale_by_adam(), optax.scale(-meta.critic_learning_rate))
        flat_obs = agent.prepare(obs_stats, obs.reshape((num_samples,) + obs.shape[2:]))
        flat_targets = targets.reshape((num_samples,))

        def loss(c, o, t):
            return 0.5 * jnp.mean((critic_net.apply(c, o) - t) ** 2)

        def minibatch_step(carry, data):
            c, s = carry
            value, g = jax.value_and_grad(loss)(c, *data)
            updates, s = optimizer.update(g, s, c)
            return (optax.apply_updates(c, updates), s), value

        def epoch(carry, k):
            order = jax.random.permutation(k, num_samples)
            shape = (static.num_minibatches, minibatch)
            data = (
                flat_obs[order].reshape(shape + flat_obs.shape[1:]),
                flat_targets[order].reshape(shape),
            )
            return jax.lax.scan(minibatch_step, carry, data)

        (critic, opt_state), losses = jax.lax.scan(
            epoch, (critic, opt_state), jax.random.split(key, static.num_epochs)
        )
        return critic, opt_state, jnp.mean(losses)

    def plain_iteration(hparams):
        def body(carry, _):
            train, batch = carry
            train, metrics = agent.update(train, batch, hparams)
            train, batch = agent.collect(train)
            return (train, batch), metrics

        return body

    def differentiable_iteration(base_hparams):
        def body(carry, phi):
            train, batch = carry
            train, metrics = agent.update(train, batch, with_phi(base_hparams, phi))
            collected, batch = agent.collect(jax.lax.stop_gradient(train))
            train = train.replace(env_state=collected.env_state, key=collected.key)
            return (train, batch), metrics

        return body

    def regularizer(phi, traj, meta: MetaHparams):
        learned = jax.tree.map(lambda x, m: x * m, phi["reward"], mask)
        total = meta.l2 * sum(jnp.sum(x**2) for x in jax.tree.leaves(learned))
        if "gamma_logit" in phi:
            total = total + meta.gamma_l2 * jax.nn.sigmoid(phi["gamma_logit"])
        if reward_fn.penalty is not None:
            total = total + reward_fn.penalty(phi["reward"], traj)
        return total

    def step(state: MetaState, hps: tuple[ppo_lib.Hparams, MetaHparams]):
        """One meta-iteration: inner PPO updates (+ rollouts), outer step, critic step."""
        hparams, meta = hps
        phi = state.phi
        inner = with_phi(hparams, phi)
        method = meta_static.method
        plain = k_inner - 1 if method == "one_step" else (k_inner if method == "implicit" else 0)
        carry, metrics_plain = jax.lax.scan(
            plain_iteration(inner), (state.train, state.batch), None, length=plain
        )
        if method in ("one_step", "unrolled"):
            body = differentiable_iteration(hparams)
            remat = meta_static.remat and method == "unrolled"
            length = k_inner - plain

            def forward(phi):
                (train, batch), metrics = grads.unroll(body, carry, phi, length, remat=remat)
                return train.params, (train, batch, metrics)

            _, vjp_fn, (train, batch, metrics_diff) = jax.vjp(forward, phi, has_aux=True)
            advantages, targets = primary_advantages(state.critic, train.obs_stats, batch, meta)
            loss, g = jax.value_and_grad(outer_loss)(
                train.params, train.obs_stats, batch, advantages
            )
            (d_phi,) = vjp_fn(g)
            metrics = (
                jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics_plain, metrics_diff)
                if plain
                else metrics_diff
            )
        else:
            train, batch = carry
            metrics = metrics_plain
            advantages, targets = primary_advantages(state.critic, train.obs_stats, batch, meta)
            loss, g = jax.value_and_grad(outer_loss)(
                train.params, train.obs_stats, batch, advantages
            )

            def inner_grad(params, phi):
                hp = with_phi(hparams, phi)
                samples, *_ = agent.samples_of(batch, hp, train.reward_state)
                return jax.grad(lambda p: agent.loss_fn(p, train.obs_stats, samples, hp)[0])(params)

            d_phi = grads.implicit_grad(
                inner_grad,
                train.params,
                phi,
                g,
                num_terms=meta_static.neumann_steps,
                alpha=meta.neumann_alpha,
            )
        reg, d_reg = jax.value_and_grad(regularizer)(phi, batch.traj, meta)
        d_phi = jax.tree.map(jnp.add, d_phi, d_reg)
        d_phi = {**d_phi, "reward": jax.tree.map(lambda x, m: x * m, d_phi["reward"], mask)}
        updates, outer_opt = _outer_optimizer(meta.outer_learning_rate).update(
            d_phi, state.outer_opt, phi
        )
        active = (state.iteration >= meta_static.warmup).astype(jnp.float32)
        phi = optax.apply_updates(phi, jax.tree.map(lambda u: active * u, updates))
        key, critic_key = jax.random.split(train.key)
        critic, critic_opt, critic_loss = critic_update(
            state.critic,
            state.critic_opt,
            train.obs_stats,
            batch.traj.obs,
            targets,
            meta,
            critic_key,
        )
        out = _sum_or_mean(metrics)
        out |= {
            "meta/outer_loss": loss,
            "meta/regularizer": reg,
            "meta/grad_norm": optax.tree_utils.tree_norm(d_phi),
            "meta/critic_loss": critic_loss,
            "meta/primary_advantage_mean": jnp.mean(advantages),
        }
        out |= phi_metrics(phi, reward_fn, batch.traj, hparams)
        new_state = MetaState(
            train=train.replace(key=key),
            batch=batch,
            critic=critic,
            critic_opt=critic_opt,
            phi=phi,
            outer_opt=outer_opt,
            iteration=state.iteration + 1,
        )
        return new_state, out

    def chunk(state: MetaState, hps, num_iterations: int):
        return jax.lax.scan(lambda s, _: step(s, hps), state, None, length=num_iterations)

    def evaluate(state: MetaState, hps, key):
        hparams, _ = hps
        return agent.evaluate(state.train, with_phi(hparams, state.phi), key)

    return Meta(
        init=jax.jit(init),
        step=step,
        chunk=chunk,
        evaluate=evaluate,
        agent=agent,
        static=meta_static,
        mask=mask,
    )
