"""PPO: one jitted ``train_step(state, hparams)``; a chunk is a ``lax.scan`` of it.

Static settings (shapes, counts, network sizes) are closed over from ``PPOStatic``; everything
tuned (learning rate, costs, clip, gamma, lambda, reward params) is a leaf of ``Hparams``, an
argument, so one compiled program serves any values and ``vmap`` over seeds or hparams works.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import normalize, optim
from rlx.distributions import Distribution, for_action_space
from rlx.envs import Box, Env, EnvState, VmapWrapper, observation_size
from rlx.losses import compute_gae, ppo_loss
from rlx.networks import Policy, Value
from rlx.rewards import RewardFn, for_batch
from rlx.types import Transition


@dataclasses.dataclass(frozen=True)
class PPOStatic:
    """Shapes, counts and switches: changing one recompiles."""

    num_envs: int = 8
    unroll_length: int = 128
    num_minibatches: int = 4
    num_epochs: int = 4
    total_iterations: int = 100
    policy_hidden: tuple[int, ...] = (64, 64)
    value_hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = 0.0
    normalize_observations: bool = True
    normalize_advantages: bool = True
    anneal_learning_rate: bool = True
    num_eval_envs: int = 16
    # Meta-gradients through an update: differentiate Adam's second moment and the clipping
    # norm too (exact), or hold them constant (LIRPG's choice); see rlx/optim.py.
    exact_meta_gradient: bool = False
    # Meta-gradients go through the last this many minibatch steps of an update (0: all).
    meta_grad_steps: int = 0

    @property
    def batch_size(self) -> int:
        """Env steps per iteration."""
        return self.num_envs * self.unroll_length


@struct.dataclass
class Hparams:
    """Traced training hyperparameters (each a float32 scalar) and the reward params pytree."""

    learning_rate: jax.Array
    entropy_cost: jax.Array
    value_cost: jax.Array
    clip_epsilon: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    max_grad_norm: jax.Array
    reward: Any


def make_hparams(reward: Any, **values: float) -> Hparams:
    """Hparams with float32 leaves (so a new value never retraces)."""
    leaves = {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
    return Hparams(reward=jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), reward), **leaves)


@struct.dataclass
class TrainState:
    """Everything one training run carries between iterations (a pytree; checkpointed whole)."""

    params: dict
    opt_state: Any
    obs_stats: normalize.RunningStats
    env_state: EnvState
    reward_state: Any
    episode_sums: dict[str, jax.Array]
    key: jax.Array
    iteration: jax.Array


class Batch(NamedTuple):
    """A collected rollout: ``traj`` [T, B] (``value`` = V(s)), ``next_values`` [T, B] = V(s'),
    and the key its SGD epochs shuffle with."""

    traj: Transition
    next_values: jax.Array
    key: jax.Array


class PPO(NamedTuple):
    """The learner's pure functions (see ``make_ppo``).

    ``train_step(state, hparams)`` is ``update(*collect(state), hparams)``; the meta-learners
    call the halves (and ``samples_of``, ``loss_fn``, ``values_of``) on their own.
    """

    init: Any
    train_step: Any
    train_chunk: Any
    evaluate: Any
    rollout: Any
    collect: Any
    update: Any
    samples_of: Any
    loss_fn: Any
    values_of: Any
    policy_value: Any
    policy_of: Any
    prepare: Any
    dist: Any
    static: PPOStatic
    env: Env
    reward_fn: RewardFn


def _episode_keys(term_names, reward_names) -> tuple[str, ...]:
    return (
        ("return", "primary_return", "length")
        + tuple(f"terms/{n}" for n in term_names)
        + tuple(f"reward/{n}" for n in reward_names)
    )


def _same_types(new: Any, old: Any) -> Any:
    """Casts ``new``'s leaves to ``old``'s dtypes, dropping weak types.

    An env step can turn a leaf weakly typed (Brax stores Python floats in its metrics), and a
    state whose types change between calls makes ``jit`` trace and compile the step again.
    """

    def cast(x, like):
        if jax.dtypes.issubdtype(like.dtype, jax.dtypes.prng_key):
            return x
        return jax.lax.convert_element_type(x, like.dtype)

    return jax.tree.map(cast, new, old)


def accumulate_episodes(running: dict, per_step: dict, done: jax.Array):
    """Adds per-step values to running episode sums and totals the episodes that end.

    running: dict of [B]; per_step: dict of [T, B]; done: [T, B].
    Returns (running', completed) where completed maps each key to the [] sum over finished
    episodes' totals, plus ``episodes``: [] the number of episodes that finished.
    """

    def step(carry, inputs):
        values, done_t = inputs
        carry = {k: carry[k] + values[k] for k in carry}
        finished = {k: jnp.sum(jnp.where(done_t, v, 0.0)) for k, v in carry.items()}
        carry = {k: jnp.where(done_t, 0.0, v) for k, v in carry.items()}
        return carry, finished

    running, finished = jax.lax.scan(step, running, (per_step, done))
    completed = {k: jnp.sum(v) for k, v in finished.items()}
    completed["episodes"] = jnp.sum(done.astype(jnp.float32))
    return running, completed


def make_ppo(static: PPOStatic, env: Env, reward_fn: RewardFn) -> PPO:
    """Builds PPO for ``env`` (time-limited, auto-resetting, unbatched) and ``reward_fn``."""
    dist: Distribution = for_action_space(env.action_space)
    policy_net = Policy(
        static.policy_hidden,
        dist.param_size,
        static.activation,
        state_independent_std=isinstance(env.action_space, Box),
        init_log_std=static.init_log_std,
    )
    value_net = Value(static.value_hidden, static.activation)
    batched = VmapWrapper(env)
    obs_size = observation_size(env)
    num_samples = static.num_envs * static.unroll_length
    minibatch_size = num_samples // static.num_minibatches

    def prepare(obs_stats, obs):
        return normalize.normalize(obs_stats, obs) if static.normalize_observations else obs

    def policy_value(params, obs_stats, obs):
        x = prepare(obs_stats, obs)
        return policy_net.apply(params["policy"], x), value_net.apply(params["value"], x)

    def policy_of(params, obs_stats, obs):
        """The policy's distribution params for observations of any leading shape."""
        return policy_net.apply(params["policy"], prepare(obs_stats, obs))

    def init(key: jax.Array, reward_params: Any) -> TrainState:
        """A fresh TrainState; ``reward_params`` is only read for the reward's structure."""
        k_policy, k_value, k_env, k_reward, key = jax.random.split(key, 5)
        dummy_obs = jnp.zeros((obs_size,), jnp.float32)
        params = {
            "policy": policy_net.init(k_policy, dummy_obs),
            "value": value_net.init(k_value, dummy_obs),
        }
        opt_state = optim.ppo_optimizer(1.0, 0.0).init(params)
        env_state = batched.reset(jax.random.split(k_env, static.num_envs))
        obs_stats = normalize.init(obs_size)
        reward_state = reward_fn.init(k_reward, env.term_names, static.num_envs)
        # Which per-term contributions the reward reports: from shapes alone, nothing runs.
        abstract_traj = _abstract_transition(env_state, k_env)
        abstract_info = jax.eval_shape(
            lambda traj: reward_fn.apply(reward_params, reward_state, traj, gamma=0.99)[2],
            abstract_traj,
        )
        names = _episode_keys(env.term_names, tuple(abstract_info))
        zeros = jnp.zeros((static.num_envs,), jnp.float32)
        state = TrainState(
            params=params,
            opt_state=opt_state,
            obs_stats=obs_stats,
            env_state=env_state,
            reward_state=reward_state,
            episode_sums={name: zeros for name in names},
            key=key,
            iteration=jnp.zeros((), jnp.int32),
        )
        return _same_types(state, state)  # no weak types: train_step keeps these exact types

    def _abstract_transition(env_state: EnvState, key: jax.Array) -> Transition:
        """Shapes of a rollout's Transition, without tracing the env (MJX traces are slow)."""

        def over_time(x):
            return jax.ShapeDtypeStruct((static.unroll_length, *x.shape), x.dtype)

        dist_params = jnp.zeros((static.num_envs, dist.param_size))
        action = jax.eval_shape(dist.sample, dist_params, key)
        per_step = jax.ShapeDtypeStruct((static.num_envs,), jnp.float32)
        return Transition(
            obs=over_time(env_state.obs),
            action=over_time(action),
            log_prob=over_time(per_step),
            value=over_time(per_step),
            next_obs=over_time(env_state.next_obs),
            terms=jax.tree.map(over_time, env_state.terms),
            primary=over_time(env_state.primary),
            signals=jax.tree.map(over_time, env_state.obs_signals),
            next_signals=jax.tree.map(over_time, env_state.signals),
            terminated=over_time(env_state.terminated),
            truncated=over_time(env_state.truncated),
        )

    def values_of(params, obs_stats, traj: Transition) -> tuple[jax.Array, jax.Array]:
        """V(s_t) and V(s'_t) [T, B] in one batched pass after the rollout (cheaper than T
        small per-step passes inside the scan, where only the policy is needed).

        Where step t did not end an episode, s'_t is s_{t+1}, so V(s') mostly reuses V(s): the
        pass covers the T x B observations plus, per env, the last step's next observation
        and the pre-reset observation of its truncated step (at most one per env while
        ``T <= episode_length``): (T + 2) x B evaluations instead of 2 x T x B. V(s'_t) is 0
        where s'_t is terminal (GAE does not bootstrap there).
        """
        steps = traj.terminated.shape[0]
        if steps > env.episode_length:  # several truncations per env possible: every s'
            both = value_net.apply(
                params["value"], prepare(obs_stats, jnp.stack([traj.obs, traj.next_obs]))
            )
            return both[0], jnp.where(traj.terminated, 0.0, both[1])
        truncated_at = jnp.argmax(traj.truncated, axis=0)  # [B] its truncated step, else 0
        pre_reset = jax.vmap(lambda x, t: x[t], (1, 0))(traj.next_obs, truncated_at)  # [B, ...]
        extra = jnp.concatenate([traj.next_obs[-1:], pre_reset[None]])  # [2, B, ...]
        out = value_net.apply(
            params["value"], prepare(obs_stats, jnp.concatenate([traj.obs, extra]))
        )
        values, last, at_truncation = out[:steps], out[steps], out[steps + 1]
        next_values = jnp.concatenate([values[1:], last[None]])
        next_values = jnp.where(traj.truncated, at_truncation[None], next_values)
        return values, jnp.where(traj.terminated, 0.0, next_values)

    def rollout(params, obs_stats, env_state, key, *, deterministic=False, length=None):
        """``length`` (default unroll_length) steps of the batched env: (env_state, [T, B]).

        The stored ``value`` is V(s) under ``params`` (computed after the scan)."""
        env_state, traj = _collect(params, obs_stats, env_state, key, deterministic, length)
        return env_state, traj.replace(value=values_of(params, obs_stats, traj)[0])

    def _collect(params, obs_stats, env_state, key, deterministic=False, length=None):
        """The rollout's scan: policy and env only; ``value`` is left at zero."""

        def one_step(env_state, step_key):
            dist_params = policy_net.apply(params["policy"], prepare(obs_stats, env_state.obs))
            if deterministic:
                action = dist.mode(dist_params)
            else:
                action = dist.sample(dist_params, step_key)
            log_prob = dist.log_prob(dist_params, action)
            next_state = batched.step(env_state, dist.to_env(action))
            transition = Transition(
                obs=env_state.obs,
                action=action,
                log_prob=log_prob,
                value=jnp.zeros_like(log_prob),
                next_obs=next_state.next_obs,
                terms=next_state.terms,
                primary=next_state.primary,
                signals=env_state.obs_signals,
                next_signals=next_state.signals,
                terminated=next_state.terminated,
                truncated=next_state.truncated,
            )
            return next_state, transition

        steps = length or static.unroll_length
        return jax.lax.scan(one_step, env_state, jax.random.split(key, steps))

    def loss_fn(params, obs_stats, batch, hparams):
        dist_params, value = policy_value(params, obs_stats, batch["obs"])
        return ppo_loss(
            log_prob=dist.log_prob(dist_params, batch["action"]),
            old_log_prob=batch["log_prob"],
            advantages=batch["advantages"],
            value=value,
            targets=batch["targets"],
            entropy=dist.entropy(dist_params),
            clip_epsilon=hparams.clip_epsilon,
            value_cost=hparams.value_cost,
            entropy_cost=hparams.entropy_cost,
            normalize_advantages=static.normalize_advantages,
        )

    def sgd(params, opt_state, obs_stats, samples, hparams, learning_rate, key):
        """num_epochs x num_minibatches updates over ``samples`` (dict of [N, ...])."""
        optimizer = optim.ppo_optimizer(
            hparams.max_grad_norm, learning_rate, static.exact_meta_gradient
        )

        def minibatch_step(carry, batch):
            params, opt_state = carry
            grads, metrics = jax.grad(loss_fn, has_aux=True)(params, obs_stats, batch, hparams)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            metrics["loss/grad_norm"] = optax.tree_utils.tree_norm(grads)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def shuffle(epoch_key):
            """The samples in a random order, as [num_minibatches, minibatch_size, ...]."""
            order = jax.random.permutation(epoch_key, num_samples)
            shape = (static.num_minibatches, minibatch_size)
            return jax.tree.map(lambda x: x[order].reshape(shape + x.shape[1:]), samples)

        def epoch(carry, epoch_key):
            return jax.lax.scan(minibatch_step, carry, shuffle(epoch_key))

        total = static.num_epochs * static.num_minibatches
        tail = static.meta_grad_steps
        if not 0 < tail < total:
            (params, opt_state), metrics = jax.lax.scan(
                epoch, (params, opt_state), jax.random.split(key, static.num_epochs)
            )
            return params, opt_state, jax.tree.map(jnp.mean, metrics)

        # Meta-gradients through the last ``tail`` minibatch steps only: the same minibatches
        # in the same order, the steps before them as constants (two scans, so the backward
        # pass runs over the tail alone).
        batches = jax.vmap(shuffle)(jax.random.split(key, static.num_epochs))
        batches = jax.tree.map(lambda x: x.reshape((total,) + x.shape[2:]), batches)
        head = jax.tree.map(lambda x: jax.lax.stop_gradient(x[: total - tail]), batches)
        carry = jax.lax.stop_gradient((params, opt_state))
        carry, first = jax.lax.scan(minibatch_step, carry, head)
        carry, last = jax.lax.scan(
            minibatch_step,
            jax.lax.stop_gradient(carry),
            jax.tree.map(lambda x: x[total - tail :], batches),
        )
        metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, last)
        return *carry, jax.tree.map(jnp.mean, metrics)

    def collect(state: TrainState) -> tuple[TrainState, Batch]:
        """One rollout of the current policy: (state with the env and key advanced, Batch)."""
        key, key_rollout, key_sgd = jax.random.split(state.key, 3)
        env_state, traj = _collect(state.params, state.obs_stats, state.env_state, key_rollout)
        values, next_values = values_of(state.params, state.obs_stats, traj)
        batch = Batch(traj=traj.replace(value=values), next_values=next_values, key=key_sgd)
        return state.replace(env_state=env_state, key=key), batch

    def samples_of(batch: Batch, hparams: Hparams, reward_state) -> tuple[dict, Any, Any, Any]:
        """Reward, GAE and flat samples of a batch under ``hparams`` (differentiable in
        ``hparams.reward`` and ``hparams.gamma``): (samples [N, ...], rewards [T, B],
        reward_state', reward_info)."""
        traj = batch.traj
        rewards, reward_state, reward_info = reward_fn.apply(
            hparams.reward, reward_state, traj, gamma=hparams.gamma
        )
        advantages, targets = compute_gae(
            rewards,
            traj.value,
            batch.next_values,
            traj.terminated,
            traj.truncated,
            hparams.gamma,
            hparams.gae_lambda,
        )
        flat = lambda x: x.reshape((num_samples,) + x.shape[2:])
        samples = {
            "obs": flat(traj.obs),
            "action": flat(traj.action),
            "log_prob": flat(traj.log_prob),
            "advantages": flat(advantages),
            "targets": flat(targets),
        }
        return samples, rewards, reward_state, reward_info

    def update(state: TrainState, batch: Batch, hparams: Hparams) -> tuple[TrainState, dict]:
        """The learning half of an iteration on a collected batch: reward, GAE, epochs x
        minibatches of SGD, normaliser update, episode bookkeeping. Differentiable in
        ``hparams.reward`` and ``hparams.gamma`` (the meta-gradients go through it)."""
        traj = batch.traj
        samples, rewards, reward_state, reward_info = samples_of(batch, hparams, state.reward_state)
        if static.anneal_learning_rate:
            progress = state.iteration.astype(jnp.float32) / static.total_iterations
            learning_rate = hparams.learning_rate * jnp.maximum(1.0 - progress, 0.0)
        else:
            learning_rate = hparams.learning_rate
        params, opt_state, metrics = sgd(
            state.params,
            state.opt_state,
            state.obs_stats,
            samples,
            hparams,
            learning_rate,
            batch.key,
        )
        # The normaliser moves after SGD, so each batch is trained with the statistics it was
        # collected with (its stored log-probabilities stay exact).
        obs_stats = state.obs_stats
        if static.normalize_observations:
            obs_stats = normalize.update(obs_stats, jax.lax.stop_gradient(samples["obs"]))
        per_step = {
            "return": rewards,
            "primary_return": traj.primary,
            "length": jnp.ones_like(rewards),
        }
        per_step |= {f"terms/{k}": v for k, v in traj.terms.items()}
        per_step |= {f"reward/{k}": v for k, v in reward_info.items()}
        per_step = jax.lax.stop_gradient(per_step)
        episode_sums, completed = accumulate_episodes(
            state.episode_sums, per_step, jnp.logical_or(traj.terminated, traj.truncated)
        )
        metrics |= {f"episode_total/{k}": v for k, v in completed.items()}
        metrics["train/reward_mean"] = jnp.mean(per_step["return"])
        metrics["train/learning_rate"] = learning_rate
        new_state = state.replace(
            params=params,
            opt_state=opt_state,
            obs_stats=obs_stats,
            reward_state=jax.lax.stop_gradient(reward_state),
            episode_sums=episode_sums,
            iteration=state.iteration + 1,
        )
        return _same_types(new_state, state), metrics

    def train_step(state: TrainState, hparams: Hparams) -> tuple[TrainState, dict]:
        """One PPO iteration: rollout, reward, GAE, epochs x minibatches, normaliser update."""
        state, batch = collect(state)
        return update(state, batch, hparams)

    def train_chunk(state: TrainState, hparams: Hparams, num_iterations: int):
        """``num_iterations`` train steps as one ``lax.scan``; metrics get a leading axis."""
        return jax.lax.scan(lambda s, _: train_step(s, hparams), state, None, length=num_iterations)

    def evaluate(state: TrainState, hparams: Hparams, key: jax.Array) -> dict:
        """Deterministic evaluation (mode action) of ``num_eval_envs`` full episodes.

        Returns means over envs of the first episode's return (the RewardFn's reward),
        primary return, length and unweighted term sums, each a [] scalar.
        """
        env_state = batched.reset(jax.random.split(key, static.num_eval_envs))
        _, traj = rollout(
            state.params,
            state.obs_stats,
            env_state,
            key,
            deterministic=True,
            length=env.episode_length,
        )
        # Running reward statistics from training; episode accumulators fresh for these envs.
        fresh = reward_fn.init(key, env.term_names, static.num_eval_envs)
        reward_state = for_batch(state.reward_state, fresh)
        rewards, _, _ = reward_fn.apply(hparams.reward, reward_state, traj, gamma=hparams.gamma)
        done = jnp.logical_or(traj.terminated, traj.truncated).astype(jnp.float32)
        # Count only each env's first episode: steps up to and including its first done.
        before_done = jnp.cumsum(done, axis=0) - done == 0
        mask = before_done.astype(jnp.float32)
        total = lambda x: jnp.mean(jnp.sum(x * mask, axis=0))
        out = {
            "eval/return": total(rewards),
            "eval/primary_return": total(traj.primary),
            "eval/length": total(jnp.ones_like(rewards)),
        }
        out |= {f"eval/terms/{k}": total(v) for k, v in traj.terms.items()}
        return out

    return PPO(
        # Jitted so every leaf is its own buffer (eager code may alias equal leaves, which
        # buffer donation refuses).
        init=jax.jit(init),
        train_step=train_step,
        train_chunk=train_chunk,
        evaluate=evaluate,
        rollout=rollout,
        collect=collect,
        update=update,
        samples_of=samples_of,
        loss_fn=loss_fn,
        values_of=values_of,
        policy_value=policy_value,
        policy_of=policy_of,
        prepare=prepare,
        dist=dist,
        static=static,
        env=env,
        reward_fn=reward_fn,
    )
