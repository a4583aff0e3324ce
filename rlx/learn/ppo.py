"""PPO: one jitted ``train_step(agent, state, hparams)``; a chunk is a ``lax.scan`` of it.

Static settings (shapes, counts, network sizes) live in ``PPOStatic``, a field of the ``PPO``
bundle; everything tuned (learning rate, costs, clip, gamma, lambda, reward params) is a leaf of
``Hparams``, an argument, so one compiled program serves any values and ``vmap`` over seeds or
hparams works. Acting (rollouts, value passes, evaluation) is ``rlx.learn.acting``; this module is
the
learner: reward, GAE, the loss, the shuffled minibatches and their SGD steps, the update.

An iteration is ``update(agent, *collect(agent, state), hparams)``. Code that composes its own
update (another learner around PPO) uses the public pieces: ``samples_of``, ``loss``,
``make_optimizer``, ``minibatches``, ``minibatch_step``, and ``update``'s ``sgd`` argument.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax
from flax import struct

from rlx.core import running_stats, sharding
from rlx.core.types import (
    Box,
    Env,
    EnvState,
    PyTree,
    Transition,
    actor_observation_size,
    observation_size,
)
from rlx.learn import acting, optim
from rlx.learn.distributions import Distribution, for_action_space
from rlx.learn.losses import compute_gae, normalized, ppo_loss
from rlx.learn.networks import Policy, RecurrentPolicy, Value
from rlx.rewards import RewardFn
from rlx.rewards.code import TERM_PREFIX


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
    kernel_init: str = "orthogonal"  # rlx.learn.networks.KERNEL_INITS
    memory: str = "none"  # the policy's recurrent cell (rlx.learn.networks.MEMORIES)
    memory_size: int = 64
    normalize_observations: bool = True
    normalize_advantages: bool = True
    anneal_learning_rate: bool = True
    gradient_clip: str = "global_norm"  # or "elementwise" (rlx.learn.optim.ppo_optimizer)
    clip_value_loss: bool = False  # V's change clipped to +-clip_epsilon (losses.ppo_loss)
    num_eval_envs: int = 16
    deterministic_eval: bool = True
    # The numerical guard's flags (``guard/*`` metrics, read by the driver once per chunk);
    # off only to measure what they cost (scripts/bench_guard.py).
    guard: bool = True

    @property
    def batch_size(self) -> int:
        """Env steps per iteration."""
        return self.num_envs * self.unroll_length

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


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
    reward_params: PyTree


def make_hparams(reward_params: PyTree, **values: float) -> Hparams:
    """Hparams with float32 leaves (so a new value never retraces)."""
    leaves = {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), reward_params)
    return Hparams(reward_params=params, **leaves)


@struct.dataclass
class TrainState:
    """Everything one training run carries between iterations (a pytree; checkpointed whole)."""

    params: dict
    opt_state: PyTree
    obs_stats: running_stats.RunningStats
    env_state: EnvState
    reward_state: PyTree
    episode_sums: dict[str, jax.Array]
    key: jax.Array
    iteration: jax.Array

    @property
    def policy_carry(self) -> PyTree:
        """The policy's memory per env: none for a feedforward policy."""
        return ()

    def with_policy_carry(self, carry: PyTree) -> TrainState:
        return self


@struct.dataclass
class RecurrentTrainState(TrainState):
    """A ``TrainState`` with a recurrent policy's memory per env [num_envs, ...] (an LSTM's
    pair of them), going on from one rollout to the next as the env states do. (A feedforward
    run's state has no such field, so its checkpoints keep their layout.)"""

    memory: PyTree

    @property
    def policy_carry(self) -> PyTree:
        return self.memory

    def with_policy_carry(self, carry: PyTree) -> RecurrentTrainState:
        return self.replace(memory=carry)


class Batch(NamedTuple):
    """A collected rollout: ``traj`` [T, B] (``value`` = V(s)), ``next_values`` [T, B] = V(s'),
    the key its SGD epochs shuffle with, and what replays the policy over it
    (``acting.PolicyForm.replay_inputs``: empty for a feedforward policy)."""

    traj: Transition
    next_values: jax.Array
    key: jax.Array
    replay: PyTree = ()


@dataclasses.dataclass(frozen=True)
class PPO:
    """PPO on one env and reward function: a typed bundle of its static parts.

    The algorithm is the module-level functions (``init``, ``collect``, ``update``,
    ``train_step``, ``train_chunk``, ``evaluate``); the methods of the same names call them with
    this bundle, so ``jax.jit(agent.train_step)`` or ``jax.vmap(agent.init, (0, None))`` work.
    """

    static: PPOStatic
    env: Env
    reward_fn: RewardFn
    actor: acting.Actor

    @property
    def dist(self) -> Distribution:
        return self.actor.dist

    @functools.cached_property
    def _jitted_init(self) -> Callable[[jax.Array, PyTree], TrainState]:
        # Jitted so every leaf is its own buffer (eager code may alias equal leaves, which
        # buffer donation refuses).
        return jax.jit(functools.partial(init, self))

    def init(self, key: jax.Array, reward_params: PyTree) -> TrainState:
        return self._jitted_init(key, reward_params)

    def collect(self, state: TrainState) -> tuple[TrainState, Batch]:
        return collect(self, state)

    def update(self, state: TrainState, batch: Batch, hparams: Hparams):
        return update(self, state, batch, hparams)

    def train_step(self, state: TrainState, hparams: Hparams):
        return train_step(self, state, hparams)

    def train_chunk(self, state: TrainState, hparams: Hparams, num_iterations: int):
        return train_chunk(self, state, hparams, num_iterations)

    def evaluate(self, state: TrainState, hparams: Hparams, key: jax.Array) -> dict:
        return evaluate(self, state, hparams, key)


def make_ppo(static: PPOStatic, env: Env, reward_fn: RewardFn) -> PPO:
    """PPO for ``env`` (time-limited, auto-resetting, unbatched) and ``reward_fn``."""
    dist = for_action_space(env.action_space)
    head = dict(
        param_size=dist.param_size,
        activation=static.activation,
        state_independent_std=isinstance(env.action_space, Box),
        init_log_std=static.init_log_std,
        kernel_init=static.kernel_init,
    )
    policy = (
        acting.Feedforward(Policy(static.policy_hidden, **head))
        if static.memory == "none"
        else acting.Recurrent(
            RecurrentPolicy(static.policy_hidden, memory=static.memory,
                            memory_size=static.memory_size, **head)
        )
    )  # fmt: skip
    value_net = Value(static.value_hidden, static.activation, static.kernel_init)
    actor = acting.Actor(
        env, policy, value_net, dist, static.normalize_observations, actor_observation_size(env)
    )
    return PPO(static=static, env=env, reward_fn=reward_fn, actor=actor)


def _info_key(name: str) -> str:
    """The metric a reward info entry is logged under: ``reward/<name>`` (a contribution),
    or ``terms/<name>`` as it is for a user-code term's unweighted value."""
    return name if name.startswith(TERM_PREFIX) else f"reward/{name}"


def _episode_keys(term_names, reward_names) -> tuple[str, ...]:
    return (
        ("return", "primary_return", "length")
        + tuple(f"terms/{n}" for n in term_names)
        + tuple(_info_key(n) for n in reward_names)
    )


def _same_types(new: PyTree, old: PyTree) -> PyTree:
    """Casts ``new``'s leaves to ``old``'s dtypes, dropping weak types.

    An env step can turn a leaf weakly typed (Brax stores Python floats in its metrics), and a
    state whose types change between calls makes ``jit`` trace and compile the step again.
    """

    def cast(x, like):
        if jax.dtypes.issubdtype(like.dtype, jax.dtypes.prng_key):
            return x
        return jax.lax.convert_element_type(x, like.dtype)

    return jax.tree.map(cast, new, old)


def _unfused(keys: jax.Array) -> jax.Array:
    """``keys`` [n, ...] unchanged, in a form XLA does not fuse into what reads them.

    Fused with the envs' resets, the split of the env key and each env's own split made one
    kernel that took 0.76-0.97 s of LLVM time, the last kernel of CartPole's 2.5 s backend
    compile (``scripts/profile_compile.py``). A stable sort on an iota passes every value through
    untouched and is not fused. (An ``optimization_barrier`` did the same, but jaxlib 0.10.2's
    CPU runtime deadlocked running one vmapped over 4 population members on MJX humanoid: README,
    Known issues.)
    """
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(keys) if typed else keys
    order = jax.lax.broadcasted_iota(jnp.int32, data.shape, 0)
    _, data = jax.lax.sort((order, data), dimension=0, num_keys=1, is_stable=True)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(keys)) if typed else data


def init(agent: PPO, key: jax.Array, reward_params: PyTree) -> TrainState:
    """A fresh TrainState; ``reward_params`` is only read for the reward's structure."""
    static, env, actor, reward_fn = agent.static, agent.env, agent.actor, agent.reward_fn
    k_policy, k_value, k_env, k_reward, key = jax.random.split(key, 5)
    obs_size = observation_size(env)
    dummy_obs = jnp.zeros((obs_size,), jnp.float32)
    params = {
        "policy": actor.policy.init(k_policy, acting.actor_view(actor, dummy_obs)),
        "value": actor.value_net.init(k_value, dummy_obs),
    }
    opt_state = optim.ppo_optimizer(1.0, 0.0).init(params)
    env_state = actor.batched.reset(_unfused(jax.random.split(k_env, static.num_envs)))
    reward_state = reward_fn.init(k_reward, env.term_names, static.num_envs)
    # Which per-term contributions the reward reports: from shapes alone, nothing runs.
    abstract_traj = _abstract_transition(agent, env_state, k_env)
    abstract_info = jax.eval_shape(
        lambda traj: reward_fn.apply(reward_params, reward_state, traj, gamma=0.99)[2],
        abstract_traj,
    )
    names = _episode_keys(env.term_names, tuple(abstract_info))
    zeros = jnp.zeros((static.num_envs,), jnp.float32)
    state = TrainState(
        params=params,
        opt_state=opt_state,
        obs_stats=running_stats.init(obs_size),
        env_state=env_state,
        reward_state=reward_state,
        episode_sums={name: zeros for name in names},
        key=key,
        iteration=jnp.zeros((), jnp.int32),
    )
    carry = actor.policy.initial_carry((static.num_envs,))
    if jax.tree.leaves(carry):  # a policy with a memory: the state carries it
        state = RecurrentTrainState(**vars(state), memory=carry)
    return _same_types(state, state)  # no weak types: train_step keeps these exact types


def _abstract_transition(agent: PPO, env_state: EnvState, key: jax.Array) -> Transition:
    """Shapes of a rollout's Transition, without tracing the env (MJX traces are slow)."""
    static, dist = agent.static, agent.dist

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
        signals=jax.tree.map(over_time, env_state.signals),
        next_signals=jax.tree.map(over_time, env_state.next_signals),
        terminated=over_time(env_state.terminated),
        truncated=over_time(env_state.truncated),
    )


def collect(agent: PPO, state: TrainState) -> tuple[TrainState, Batch]:
    """One rollout of the current policy: (state with the env and key advanced, Batch)."""
    key, key_rollout, key_sgd = jax.random.split(state.key, 3)
    env_state, carry, traj, next_values, replay = acting.collect_carried(
        agent.actor,
        state.params,
        state.obs_stats,
        state.env_state,
        state.policy_carry,
        key_rollout,
        agent.static.unroll_length,
    )
    batch = Batch(traj=traj, next_values=next_values, key=key_sgd, replay=replay)
    return state.replace(env_state=env_state, key=key).with_policy_carry(carry), batch


def samples_of(
    agent: PPO, batch: Batch, hparams: Hparams, reward_state: PyTree
) -> tuple[dict, jax.Array, PyTree, dict]:
    """Reward, GAE and the learner's samples of a batch under ``hparams`` (differentiable in
    ``hparams.reward_params`` and ``hparams.gamma``): (samples, rewards [T, B], reward_state',
    reward_info). The samples are as the policy's form arranges them
    (``acting.PolicyForm.arrange``): dict of [N, ...] steps for a feedforward policy, of
    [B, T, ...] env sequences (and their carries and starts) for a recurrent one; minibatches
    are drawn along the first axis either way."""
    traj = batch.traj
    rewards, reward_state, reward_info = agent.reward_fn.apply(
        hparams.reward_params, reward_state, traj, gamma=hparams.gamma
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
    per_step = {
        "obs": traj.obs,
        "action": traj.action,
        "log_prob": traj.log_prob,
        "advantages": advantages,
        "targets": targets,
    }
    if agent.static.clip_value_loss:
        per_step["value"] = jax.lax.stop_gradient(traj.value)
    samples = agent.actor.policy.arrange(per_step, batch.replay)
    return samples, rewards, reward_state, reward_info


def loss(agent: PPO, params: dict, obs_stats, batch: dict, hparams: Hparams):
    """The clipped-surrogate loss of a minibatch (``samples_of``'s samples along their first
    axis): (loss [], metrics)."""
    dist = agent.dist
    dist_params, value = acting.sample_policy_value(agent.actor, params, obs_stats, batch)
    advantages, normalize = batch["advantages"], agent.static.normalize_advantages
    shards = sharding.traced_devices()
    if normalize and shards > 1 and advantages.shape[0] % shards == 0:
        # a minibatch of ``minibatches`` split over devices holds an equal part of each
        # device's samples: each part normalised on its own, as ``sgd`` does on each device
        parts = advantages.reshape(shards, -1)  # [D, ...]: a recurrent policy's [b, T] too
        advantages = jax.vmap(normalized)(parts).reshape(advantages.shape)
        normalize = False
    return ppo_loss(
        log_prob=dist.log_prob(dist_params, batch["action"]),
        old_log_prob=batch["log_prob"],
        advantages=advantages,
        value=value,
        targets=batch["targets"],
        entropy=dist.entropy(dist_params),
        clip_epsilon=hparams.clip_epsilon,
        value_cost=hparams.value_cost,
        entropy_cost=hparams.entropy_cost,
        normalize_advantages=normalize,
        old_value=batch["value"] if agent.static.clip_value_loss else None,
    )


def make_optimizer(
    agent: PPO, hparams: Hparams, learning_rate: jax.Array, exact: bool = False
) -> optax.GradientTransformation:
    """PPO's optimizer under traced ``hparams`` (its state does not depend on them), clipping
    as ``agent.static.gradient_clip`` says."""
    return optim.ppo_optimizer(
        hparams.max_grad_norm, learning_rate, exact, clip=agent.static.gradient_clip
    )


def minibatch_step(
    agent: PPO,
    optimizer: optax.GradientTransformation,
    obs_stats,
    hparams: Hparams,
    carry: tuple[dict, PyTree],
    batch: dict,
    reduce: Callable[[dict], dict] = lambda grads: grads,
):
    """One SGD step on one minibatch: ((params, opt_state), batch) -> ((params', opt_state'),
    metrics), in the form ``lax.scan`` takes (bind the first four arguments). ``reduce`` maps
    the minibatch's gradient to the one applied (the mean over devices, where each holds a
    part of the minibatch)."""
    params, opt_state = carry
    grads, metrics = jax.grad(functools.partial(loss, agent), has_aux=True)(
        params, obs_stats, batch, hparams
    )
    grads = reduce(grads)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    metrics["loss/grad_norm"] = optax.tree_utils.tree_norm(grads)
    return (optax.apply_updates(params, updates), opt_state), metrics


def minibatches(samples: dict, key: jax.Array, num_minibatches: int) -> dict:
    """One epoch's minibatches: ``samples`` (dict of [N, ...]) in a random order, as
    [num_minibatches, N // num_minibatches, ...].

    Traced with a mesh of D > 1 devices set (a single learner whose env batch is split over
    them, ``rlx.run.driver``), the samples are D contiguous blocks, one per device
    (``acting.steps_as_samples``): each block is shuffled on its own, with its own key, and
    every minibatch takes an equal part of each. No sample crosses devices, and the gradient's
    reduction is a minibatch step's only collective (data-parallel PPO, as Brax's). The update
    then depends on D; on one device it is the whole batch's shuffle."""
    num_samples = jax.tree.leaves(samples)[0].shape[0]
    shards = sharding.traced_devices()
    if shards == 1 or num_samples % (shards * num_minibatches):
        order = jax.random.permutation(key, num_samples)
        shape = (num_minibatches, num_samples // num_minibatches)
        return jax.tree.map(lambda x: x[order].reshape(shape + x.shape[1:]), samples)
    per_shard = num_samples // shards
    orders = jax.vmap(jax.random.permutation, (0, None))(jax.random.split(key, shards), per_shard)

    def arrange(x):  # [N] -> [D, N / D] (a row per device), shuffled within rows
        x = x.reshape((shards, per_shard) + x.shape[1:])
        x = jnp.take_along_axis(x, orders.reshape(orders.shape + (1,) * (x.ndim - 2)), axis=1)
        x = x.reshape((shards, num_minibatches, per_shard // num_minibatches) + x.shape[2:])
        return jnp.moveaxis(x, 0, 1).reshape((num_minibatches, -1) + x.shape[3:])

    return jax.tree.map(arrange, samples)


def sgd(agent: PPO, params, opt_state, obs_stats, samples, hparams, learning_rate, key):
    """num_epochs x num_minibatches SGD steps over ``samples`` (dict of [N, ...]):
    (params', opt_state', metrics averaged over the steps).

    Traced with a mesh of D > 1 devices set (``rlx.run.driver``, a single learner), each
    device runs the steps on its own block of samples (``minibatches``: an equal part of every
    minibatch) inside a ``shard_map``, its advantages normalised on the device, and the
    gradient is averaged over the devices in one all-reduce of one array per step; the
    metrics, once per call. Data-parallel PPO, as Brax's: nothing else crosses devices."""
    static = agent.static
    num_samples = jax.tree.leaves(samples)[0].shape[0]
    shards = sharding.traced_devices()
    if shards > 1 and num_samples % (shards * static.num_minibatches) == 0:
        return _sgd_per_device(agent, params, opt_state, obs_stats, samples, hparams,
                               learning_rate, key, shards)  # fmt: skip
    step = functools.partial(
        minibatch_step, agent, make_optimizer(agent, hparams, learning_rate), obs_stats, hparams
    )

    def epoch(carry, epoch_key):
        return jax.lax.scan(step, carry, minibatches(samples, epoch_key, static.num_minibatches))

    (params, opt_state), metrics = jax.lax.scan(
        epoch, (params, opt_state), jax.random.split(key, static.num_epochs)
    )
    return params, opt_state, jax.tree.map(jnp.mean, metrics)


def _sgd_per_device(
    agent, params, opt_state, obs_stats, samples, hparams, learning_rate, key, shards: int
):
    """``sgd`` on ``shards`` devices: each shuffles its own block of ``samples`` with its own
    key (as ``minibatches`` splits them), steps on its part of each minibatch, and applies
    the gradient averaged over the devices (raveled: one operand per all-reduce)."""
    axes = jax.sharding.get_abstract_mesh().axis_names
    split, whole = jax.sharding.PartitionSpec(axes), jax.sharding.PartitionSpec()

    def mean_over_devices(tree):
        flat, unravel = jax.flatten_util.ravel_pytree(tree)
        return unravel(jax.lax.pmean(flat, axes))

    def local(params, opt_state, obs_stats, samples, hparams, learning_rate, key):
        index = jax.lax.axis_index(axes)
        step = functools.partial(
            minibatch_step, agent, make_optimizer(agent, hparams, learning_rate), obs_stats,
            hparams, reduce=mean_over_devices,
        )  # fmt: skip

        def epoch(carry, epoch_key):
            own = jax.random.split(epoch_key, shards)[index]
            return jax.lax.scan(
                step, carry, minibatches(samples, own, agent.static.num_minibatches)
            )

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, agent.static.num_epochs)
        )
        return params, opt_state, mean_over_devices(jax.tree.map(jnp.mean, metrics))

    specs = (whole, whole, whole, split, whole, whole, whole)
    return jax.shard_map(local, in_specs=specs, out_specs=(whole, whole, whole), check_vma=False)(
        params, opt_state, obs_stats, samples, hparams, learning_rate, key
    )


SGD = Callable[..., tuple[dict, PyTree, dict]]


def learning_rate(agent: PPO, state: TrainState, hparams: Hparams) -> jax.Array:
    """This iteration's learning rate: annealed linearly to 0 over the run when configured."""
    if not agent.static.anneal_learning_rate:
        return hparams.learning_rate
    progress = state.iteration.astype(jnp.float32) / agent.static.total_iterations
    return hparams.learning_rate * jnp.maximum(1.0 - progress, 0.0)


def accumulate_episodes(running: dict, per_step: dict, done: jax.Array):
    """Adds per-step values to running episode sums and totals the episodes that end.

    running: dict of [B]; per_step: dict of [T, B]; done: [T, B].
    Returns (running', completed) where completed maps each key to the [] sum over finished
    episodes' totals, plus ``episodes``: [] the number of episodes that finished.
    """

    # With the envs split over devices (a mesh of D > 1 traced) the sums over envs wait until
    # after the scan: one collective per iteration ([T, B] -> [T] -> []), not one per env step.
    # On one device they stay in the scan (the same numbers as ever: XLA rounds the two forms
    # differently).
    split = sharding.traced_devices() > 1

    def step(carry, inputs):
        values, done_t = inputs
        carry = {k: carry[k] + values[k] for k in carry}
        finished = {k: jnp.where(done_t, v, 0.0) for k, v in carry.items()}
        finished = finished if split else {k: jnp.sum(v) for k, v in finished.items()}
        carry = {k: jnp.where(done_t, 0.0, v) for k, v in carry.items()}
        return carry, finished

    running, finished = jax.lax.scan(step, running, (per_step, done))
    over_envs = (lambda v: jnp.sum(v, axis=1)) if split else (lambda v: v)
    completed = {k: jnp.sum(over_envs(v)) for k, v in finished.items()}
    completed["episodes"] = jnp.sum(done.astype(jnp.float32))
    return running, completed


def _episode_bookkeeping(
    state: TrainState, traj: Transition, rewards, reward_info, guard: bool = True
):
    """(episode_sums', metrics): per-step returns, primary, lengths, terms and reward
    contributions added to the running episode sums; totals of the episodes that ended."""
    per_step = {
        "return": rewards,
        "primary_return": traj.primary,
        "length": jnp.ones_like(rewards),
    }
    per_step |= {f"terms/{k}": v for k, v in traj.terms.items()}
    per_step |= {_info_key(k): v for k, v in reward_info.items()}
    per_step = jax.lax.stop_gradient(per_step)
    episode_sums, completed = accumulate_episodes(
        state.episode_sums, per_step, jnp.logical_or(traj.terminated, traj.truncated)
    )
    metrics = {f"episode_total/{k}": v for k, v in completed.items()}
    metrics["train/reward_mean"] = jnp.mean(per_step["return"])
    # The numerical guard on what the env and the reward produced this iteration, every step
    # (episode totals see only the episodes that ended): 1.0 while all finite.
    if guard:
        per_step |= {"obs": traj.obs}
        metrics |= {f"guard/{k}_finite": _finite(v) for k, v in per_step.items() if k != "length"}
    return episode_sums, metrics


def _finite(tree) -> jax.Array:
    """[] float32: 1.0 when every element of every leaf of ``tree`` is finite, else 0.0."""
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(flags)).astype(jnp.float32)


def update(
    agent: PPO, state: TrainState, batch: Batch, hparams: Hparams, sgd: SGD = sgd
) -> tuple[TrainState, dict]:
    """The learning half of an iteration on a collected batch: reward, GAE, epochs x
    minibatches of SGD (``sgd``, same signature as ``rlx.learn.ppo.sgd``), normaliser update,
    episode
    bookkeeping. Differentiable in ``hparams.reward_params`` and ``hparams.gamma``."""
    samples, rewards, reward_state, reward_info = samples_of(
        agent, batch, hparams, state.reward_state
    )
    lr = learning_rate(agent, state, hparams)
    params, opt_state, metrics = sgd(
        agent, state.params, state.opt_state, state.obs_stats, samples, hparams, lr, batch.key
    )
    # The normaliser moves after SGD, so each batch is trained with the statistics it was
    # collected with (its stored log-probabilities stay exact).
    obs_stats = state.obs_stats
    if agent.static.normalize_observations:
        observations = acting.steps_as_samples(batch.traj.obs)
        obs_stats = running_stats.update(obs_stats, jax.lax.stop_gradient(observations))
    episode_sums, episode_metrics = _episode_bookkeeping(
        state, batch.traj, rewards, reward_info, agent.static.guard
    )
    metrics |= episode_metrics
    metrics["train/learning_rate"] = lr
    if agent.reward_fn.metrics is not None:  # e.g. a schedule's current values
        metrics |= agent.reward_fn.metrics(hparams.reward_params, reward_state)
    # The numerical guard: 1.0 while every parameter is finite (the driver reads it per chunk).
    if agent.static.guard:
        metrics["guard/params_finite"] = _finite(params)
    new_state = state.replace(
        params=params,
        opt_state=opt_state,
        obs_stats=obs_stats,
        reward_state=jax.lax.stop_gradient(reward_state),
        episode_sums=episode_sums,
        iteration=state.iteration + 1,
    )
    return _same_types(new_state, state), metrics


def train_step(agent: PPO, state: TrainState, hparams: Hparams) -> tuple[TrainState, dict]:
    """One PPO iteration: rollout, reward, GAE, epochs x minibatches, normaliser update."""
    state, batch = collect(agent, state)
    return update(agent, state, batch, hparams)


def train_chunk(agent: PPO, state: TrainState, hparams: Hparams, num_iterations: int):
    """``num_iterations`` train steps as one ``lax.scan``; metrics get a leading axis."""
    return jax.lax.scan(
        lambda s, _: train_step(agent, s, hparams), state, None, length=num_iterations
    )


def evaluate(agent: PPO, state: TrainState, hparams: Hparams, key: jax.Array) -> dict:
    """Evaluation of ``num_eval_envs`` full episodes, the policy's mode action unless
    ``deterministic_eval`` is off (see ``acting.evaluate``)."""
    return acting.evaluate(
        agent.actor,
        agent.reward_fn,
        state,
        hparams,
        key,
        agent.static.num_eval_envs,
        deterministic=agent.static.deterministic_eval,
    )
