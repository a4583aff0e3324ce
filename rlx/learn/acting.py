"""Acting: running a policy in the batched env, the value passes over a rollout, evaluation.

Apart from the learner (``rlx.learn.ppo``: loss, SGD, update): everything here reads network
parameters and never changes them. ``Actor`` is the small typed bundle these functions share.

- ``unroll``: the scan of policy and env steps -> ``Transition`` [T, B] (``value`` left at 0);
- ``value_pass``: V(s) and V(s') [T, B] of a rollout in one batched network pass;
- ``collect``: ``unroll`` then ``value_pass``: a rollout ready for GAE;
- ``evaluate``: deterministic episodes of the policy, scored by the reward function.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from rlx.core import running_stats, sharding
from rlx.core.types import Env, EnvState, Transition
from rlx.envs.wrappers import VmapWrapper
from rlx.learn.distributions import Distribution
from rlx.learn.networks import Policy, RecurrentPolicy, Value, memory_carry
from rlx.rewards import RewardFn, for_batch
from rlx.rewards.code import TERM_PREFIX


@dataclasses.dataclass(frozen=True)
class Feedforward:
    """A memoryless policy (``networks.Policy``): its carry is empty, and the learner's samples
    are single steps (the rollout's [T, B] flattened to [T * B])."""

    net: Policy

    def init(self, key: jax.Array, obs: jax.Array) -> dict:
        return self.net.init(key, obs)

    def initial_carry(self, batch_shape: tuple[int, ...]):
        return ()

    def step(self, params: dict, carry, obs: jax.Array, start: jax.Array):
        """(carry, distribution params [B, param_size]) for normalised ``obs`` [B, obs_size]."""
        return carry, self.net.apply(params, obs)

    def replay_inputs(self, carry, start: jax.Array, traj: Transition):
        """What the learner needs to replay the rollout besides its observations: nothing."""
        return ()

    def arrange(self, per_step: dict, replay) -> dict:
        """The learner's samples: each [T, B, ...] leaf as [N, ...] (``steps_as_samples``)."""
        return jax.tree.map(steps_as_samples, per_step)

    def sample_params(self, params: dict, obs: jax.Array, samples: dict) -> jax.Array:
        """Distribution params [N, param_size] of normalised sample observations [N, obs]."""
        return self.net.apply(params, obs)

    def rollout_params(self, params: dict, obs: jax.Array, replay) -> jax.Array:
        """Distribution params [T, B, param_size] of a rollout's normalised observations
        [T, B, obs] (``replay`` is empty)."""
        return self.net.apply(params, obs)


def steps_as_samples(x: jax.Array) -> jax.Array:
    """A rollout's [T, B, ...] as the learner's [T * B, ...] samples, step-major; env-major
    ([B * T, ...]) when the program being traced splits its env batch over several devices,
    so that each device's samples are one contiguous block (``ppo.minibatches``)."""
    if sharding.traced_devices() > 1:
        x = jnp.swapaxes(x, 0, 1)
    return x.reshape((-1, *x.shape[2:]))


@dataclasses.dataclass(frozen=True)
class Recurrent:
    """A recurrent policy (``networks.RecurrentPolicy``): its carry [B, memory_size] (an
    LSTM's pair of them) goes from step to step and from rollout to rollout, zeroed where an
    episode starts. The learner's samples are whole env sequences ([B, T, ...], minibatches of
    envs), replayed from the carry the rollout began with: truncated backpropagation through
    time over ``unroll_length``."""

    net: RecurrentPolicy

    def init(self, key: jax.Array, obs: jax.Array) -> dict:
        return self.net.init(key, self.initial_carry(()), obs, jnp.zeros((), bool))

    def initial_carry(self, batch_shape: tuple[int, ...]):
        """Zeros: [*batch_shape, memory_size] (an LSTM's pair of them)."""
        return memory_carry(self.net.memory, self.net.memory_size, batch_shape)

    def step(self, params: dict, carry, obs: jax.Array, start: jax.Array):
        """(carry', distribution params [B, param_size]) for normalised ``obs`` [B, obs_size]
        and ``start`` [B] (the observation begins an episode)."""
        return self.net.apply(params, carry, obs, start)

    def replay_inputs(self, carry, start: jax.Array, traj: Transition):
        """(the rollout's first carry [B, ...], starts [T, B]): observation t begins an episode
        where step t - 1 ended one (the first, where the state the rollout began from did)."""
        done = jnp.logical_or(traj.terminated, traj.truncated)
        return carry, jnp.concatenate([start[None], done[:-1]])

    def arrange(self, per_step: dict, replay) -> dict:
        """The learner's samples by env: each [T, B, ...] leaf as [B, T, ...], with the carry
        each env's sequence starts from and its starts [B, T]."""
        carry, starts = replay
        samples = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), per_step)
        return samples | {"carry": carry, "start": jnp.swapaxes(starts, 0, 1)}

    def sample_params(self, params: dict, obs: jax.Array, samples: dict) -> jax.Array:
        """Distribution params [B, T, param_size] of normalised sequences ``obs`` [B, T, obs],
        the policy run forward from each sequence's carry."""

        def step(carry, inputs):
            x, start = inputs
            return self.net.apply(params, carry, x, start)

        time_major = (jnp.swapaxes(obs, 0, 1), jnp.swapaxes(samples["start"], 0, 1))
        _, out = jax.lax.scan(step, samples["carry"], time_major)
        return jnp.swapaxes(out, 0, 1)

    def rollout_params(self, params: dict, obs: jax.Array, replay) -> jax.Array:
        """Distribution params [T, B, param_size] of a rollout's normalised observations
        [T, B, obs], the policy run forward from the rollout's first carry with its starts
        (``replay_inputs``): what any parameters make of the rollout, memory included."""
        carry, starts = replay
        samples = {"carry": carry, "start": jnp.swapaxes(starts, 0, 1)}
        return jnp.swapaxes(self.sample_params(params, jnp.swapaxes(obs, 0, 1), samples), 0, 1)


PolicyForm = Feedforward | Recurrent


@dataclasses.dataclass(frozen=True)
class Actor:
    """What acting needs: the env (unbatched, time-limited, auto-resetting), the policy (its
    form: ``Feedforward`` or ``Recurrent``) and value networks, the action distribution, and
    whether observations are normalised.

    ``actor_inputs``: how many leading entries of an observation the policy reads (the env's
    ``actor_observation_size``); the value network reads all of it, the privileged rest
    included (an asymmetric actor-critic). None: the policy reads the whole observation.
    """

    env: Env
    policy: PolicyForm
    value_net: Value
    dist: Distribution
    normalize_observations: bool
    actor_inputs: int | None = None

    @property
    def policy_net(self) -> Policy | RecurrentPolicy:
        return self.policy.net

    @property
    def batched(self) -> VmapWrapper:
        return VmapWrapper(self.env)


class LearnerState(Protocol):
    """What acting reads of a learner's state (``ppo.TrainState`` has it)."""

    params: dict
    obs_stats: Any
    reward_state: Any


class RewardHparams(Protocol):
    """What acting reads of a learner's hparams (``ppo.Hparams`` has it)."""

    reward_params: Any
    gamma: jax.Array


def normalize_obs(actor: Actor, obs_stats: running_stats.RunningStats, obs: jax.Array):
    """Observations [..., obs_size] as the networks see them (normalised when configured)."""
    if actor.normalize_observations:
        return running_stats.normalize(obs_stats, obs)
    return obs


def actor_view(actor: Actor, obs: jax.Array) -> jax.Array:
    """What the policy reads of observations [..., obs_size]: the leading ``actor_inputs``
    entries (the privileged rest is the critic's alone), or all of them."""
    return obs if actor.actor_inputs is None else obs[..., : actor.actor_inputs]


def rollout_policy_params(actor: Actor, params: dict, obs_stats, obs: jax.Array, replay):
    """The policy's distribution params [T, B, param_size] over a rollout's observations
    [T, B, obs_size], for any ``params`` (the meta-gradients' outer losses score updated
    policies on it); ``replay``: the rollout's ``ppo.Batch.replay`` (a recurrent policy's first
    carry and starts)."""
    x = actor_view(actor, normalize_obs(actor, obs_stats, obs))
    return actor.policy.rollout_params(params["policy"], x, replay)


def sample_policy_value(actor: Actor, params: dict, obs_stats, samples: dict):
    """(distribution params, V(s)) of the learner's ``samples`` (``PolicyForm.arrange``:
    [N, ...] steps for a feedforward policy, [B, T, ...] sequences for a recurrent one), from
    one normalisation of their observations."""
    x = normalize_obs(actor, obs_stats, samples["obs"])
    dist_params = actor.policy.sample_params(params["policy"], actor_view(actor, x), samples)
    return dist_params, actor.value_net.apply(params["value"], x)


def unroll(
    actor: Actor,
    params: dict,
    obs_stats,
    env_state: EnvState,
    key: jax.Array,
    length: int,
    deterministic: bool = False,
) -> tuple[EnvState, Transition]:
    """``length`` steps of the batched env under the policy from a fresh policy carry:
    (env_state', Transition [T, B]); ``unroll_carried`` with the carry left out."""
    carry = actor.policy.initial_carry(env_state.obs.shape[:1])
    (env_state, _), traj = unroll_carried(
        actor, params, obs_stats, env_state, carry, key, length, deterministic
    )
    return env_state, traj


def unroll_carried(
    actor: Actor,
    params: dict,
    obs_stats,
    env_state: EnvState,
    carry,
    key: jax.Array,
    length: int,
    deterministic: bool = False,
) -> tuple[tuple[EnvState, Any], Transition]:
    """``length`` steps of the batched env under the policy, from its ``carry`` (a recurrent
    policy's memory [B, ...]; empty for a feedforward one): ((env_state', carry'),
    Transition [T, B]).

    Only the policy runs inside the scan; ``value`` is left at zero (``value_pass`` fills it).
    ``deterministic`` takes the distribution's mode instead of a sample. An observation that
    begins an episode (the step before it ended one) starts from a zeroed memory.
    """
    dist, batched = actor.dist, actor.batched

    def one_step(state_and_carry, step_noise):
        env_state, carry = state_and_carry
        x = actor_view(actor, normalize_obs(actor, obs_stats, env_state.obs))
        carry, dist_params = actor.policy.step(params["policy"], carry, x, env_state.done)
        if deterministic:
            action = dist.mode(dist_params)
        else:
            action = dist.from_noise(dist_params, step_noise)
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
            signals=env_state.signals,
            next_signals=next_state.next_signals,
            terminated=next_state.terminated,
            truncated=next_state.truncated,
        )
        return (next_state, carry), transition

    # Every step's action noise in one vectorised draw ahead of the scan, from the same
    # per-step keys (the same draws as sampling inside each step; see Distribution.from_noise
    # for the Gaussian's last bit): one PRNG kernel per rollout instead of one per step.
    step_keys = jax.random.split(key, length)
    if deterministic:
        noise = None
    else:
        batch_shape = env_state.obs.shape[:1]
        noise = jax.vmap(lambda k: dist.noise(k, batch_shape))(step_keys)
    return jax.lax.scan(one_step, (env_state, carry), noise, length=length)


def value_pass(
    actor: Actor, params: dict, obs_stats, traj: Transition
) -> tuple[jax.Array, jax.Array]:
    """V(s_t) and V(s'_t) [T, B] in one batched pass after the rollout (cheaper than T small
    per-step passes inside the scan, where only the policy is needed).

    Where step t did not end an episode, s'_t is s_{t+1}, so V(s') mostly reuses V(s): the pass
    covers the T x B observations plus, per env, the last step's next observation and the
    pre-reset observation of its truncated step (at most one per env while
    ``T <= episode_length``): (T + 2) x B evaluations instead of 2 x T x B. V(s'_t) is 0 where
    s'_t is terminal (GAE does not bootstrap there).
    """
    value_net = actor.value_net
    steps = traj.terminated.shape[0]
    if steps > actor.env.episode_length:  # several truncations per env possible: every s'
        both = value_net.apply(
            params["value"],
            normalize_obs(actor, obs_stats, jnp.stack([traj.obs, traj.next_obs])),
        )
        return both[0], jnp.where(traj.terminated, 0.0, both[1])
    truncated_at = jnp.argmax(traj.truncated, axis=0)  # [B] its truncated step, else 0
    pre_reset = jax.vmap(lambda x, t: x[t], (1, 0))(traj.next_obs, truncated_at)  # [B, ...]
    extra = jnp.concatenate([traj.next_obs[-1:], pre_reset[None]])  # [2, B, ...]
    out = value_net.apply(
        params["value"], normalize_obs(actor, obs_stats, jnp.concatenate([traj.obs, extra]))
    )
    values, last, at_truncation = out[:steps], out[steps], out[steps + 1]
    next_values = jnp.concatenate([values[1:], last[None]])
    next_values = jnp.where(traj.truncated, at_truncation[None], next_values)
    return values, jnp.where(traj.terminated, 0.0, next_values)


def collect(
    actor: Actor, params: dict, obs_stats, env_state: EnvState, key: jax.Array, length: int
) -> tuple[EnvState, Transition, jax.Array]:
    """A rollout ready for GAE from a fresh policy carry: (env_state', traj [T, B] with
    ``value`` = V(s), V(s') [T, B]); ``collect_carried`` with the carry left out."""
    carry = actor.policy.initial_carry(env_state.obs.shape[:1])
    env_state, _, traj, next_values, _ = collect_carried(
        actor, params, obs_stats, env_state, carry, key, length
    )
    return env_state, traj, next_values


def collect_carried(
    actor: Actor,
    params: dict,
    obs_stats,
    env_state: EnvState,
    carry,
    key: jax.Array,
    length: int,
) -> tuple[EnvState, Any, Transition, jax.Array, Any]:
    """A rollout ready for GAE from the policy's ``carry``: (env_state', carry', traj [T, B]
    with ``value`` = V(s), V(s') [T, B], what the learner needs to replay the policy over it
    (``PolicyForm.replay_inputs``))."""
    start = env_state.done
    (env_state, carry_after), traj = unroll_carried(
        actor, params, obs_stats, env_state, carry, key, length
    )
    values, next_values = value_pass(actor, params, obs_stats, traj)
    replay = actor.policy.replay_inputs(carry, start, traj)
    return env_state, carry_after, traj.replace(value=values), next_values, replay


def evaluate(
    actor: Actor,
    reward_fn: RewardFn,
    state: LearnerState,
    hparams: RewardHparams,
    key: jax.Array,
    num_envs: int,
    deterministic: bool = True,
) -> dict[str, jax.Array]:
    """Evaluation of ``num_envs`` full episodes, the mode action (or, not ``deterministic``,
    actions sampled from the policy).

    ``state``: the learner's (``ppo.TrainState``: its params, observation statistics and
    reward state; the reward state's running statistics carry over, its per-env episode
    accumulators are replaced by fresh ones for these envs); ``hparams``: its reward params
    and discount (``ppo.Hparams``). Returns means over envs of
    the first episode's return (the RewardFn's reward), primary return, length and unweighted
    term sums, each a [] scalar: ``eval/return``, ``eval/primary_return``, ``eval/length``,
    ``eval/terms/<name>`` (user-code terms too); for an env with a ``success`` term (reach,
    push, lift) also ``eval/success``, the fraction of envs whose episode ended with it (its
    last step's value).
    """
    episodes = evaluate_episodes(
        actor, reward_fn, state, hparams, key, num_envs, deterministic=deterministic
    )
    return {k: jnp.mean(v) for k, v in episodes.items()}


def evaluate_episodes(
    actor: Actor,
    reward_fn: RewardFn,
    state: LearnerState,
    hparams: RewardHparams,
    key: jax.Array,
    num_envs: int,
    deterministic: bool = True,
) -> dict[str, jax.Array]:
    """``evaluate``'s quantities per env ([num_envs] each: the first episode of each env);
    ``deterministic=False`` samples actions from the policy instead of taking its mode."""
    env = actor.env
    params, obs_stats = state.params, state.obs_stats
    k_reset, k_unroll, k_reward = jax.random.split(key, 3)  # one use per key
    env_state = actor.batched.reset(jax.random.split(k_reset, num_envs))
    _, traj = unroll(
        actor,
        params,
        obs_stats,
        env_state,
        k_unroll,
        env.episode_length,
        deterministic=deterministic,
    )
    traj = traj.replace(value=value_pass(actor, params, obs_stats, traj)[0])
    fresh = reward_fn.init(k_reward, env.term_names, num_envs)
    rewards, _, info = reward_fn.apply(
        hparams.reward_params, for_batch(state.reward_state, fresh), traj, gamma=hparams.gamma
    )
    done = jnp.logical_or(traj.terminated, traj.truncated).astype(jnp.float32)
    # Count only each env's first episode: steps up to and including its first done.
    before_done = jnp.cumsum(done, axis=0) - done == 0
    mask = before_done.astype(jnp.float32)
    total = lambda x: jnp.sum(x * mask, axis=0)
    out = {
        "eval/return": total(rewards),
        "eval/primary_return": total(traj.primary),
        "eval/length": total(jnp.ones_like(rewards)),
    }
    out |= {f"eval/terms/{k}": total(v) for k, v in traj.terms.items()}
    # user-code terms' unweighted values (rlx.rewards.code.with_terms)
    out |= {f"eval/{k}": total(v) for k, v in info.items() if k.startswith(TERM_PREFIX)}
    if "success" in traj.terms:  # manipulation: success on the first episode's last step
        out["eval/success"] = jnp.sum(traj.terms["success"] * done * mask, axis=0)
    return out
