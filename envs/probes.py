"""Probe envs (after Andy Jones' "debugging RL"): tiny tasks with a known answer.

Each isolates one part of the learner; the expected value or policy is in the docstring.
All report a single unweighted term ``reward``; primary equals it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import Box, Discrete, EnvState
from rlx.envs.base import make_state, transition_state


@dataclasses.dataclass(frozen=True)
class _Probe:
    episode_length: int = 1
    name: ClassVar[str] = "probe"

    action_space = Discrete(1)
    term_names = ("reward",)
    signal_names = ("step",)

    def _first_obs(self, key: jax.Array) -> jax.Array:
        return jnp.ones((1,), jnp.float32)

    def _outcome(self, obs: jax.Array, count: jax.Array, action: jax.Array):
        """(next_obs [1], reward [], terminated []) of one step."""
        raise NotImplementedError

    def reset(self, key: jax.Array) -> EnvState:
        key, obs_key = jax.random.split(key)
        obs = self._first_obs(obs_key)
        return make_state(
            physics=obs,
            obs=obs,
            signals={"step": jnp.zeros(())},
            term_names=self.term_names,
            key=key,
        )

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        next_obs, reward, terminated = self._outcome(state.physics, state.step_count, action)
        return transition_state(
            state,
            physics=next_obs,
            obs=next_obs,
            signals={"step": (state.step_count + 1).astype(jnp.float32)},
            terms={"reward": reward},
            primary=reward,
            terminated=terminated,
        )


@dataclasses.dataclass(frozen=True)
class ProbeConstant(_Probe):
    """One action, one step, reward +1: the value must be 1."""

    name: ClassVar[str] = "probe/constant"

    def _outcome(self, obs, count, action):
        return obs, jnp.ones(()), True


@dataclasses.dataclass(frozen=True)
class ProbeObserved(_Probe):
    """Observation +-1 at random, one step, reward = observation: V(obs) = obs."""

    name: ClassVar[str] = "probe/observed"

    def _first_obs(self, key):
        return jnp.where(jax.random.bernoulli(key), 1.0, -1.0).reshape(1).astype(jnp.float32)

    def _outcome(self, obs, count, action):
        return obs, obs[0], True


@dataclasses.dataclass(frozen=True)
class ProbeTwoStep(_Probe):
    """Obs 0 then 1, reward +1 only at the end of step 2: V(0) = gamma, V(1) = 1."""

    episode_length: int = 2
    name: ClassVar[str] = "probe/two_step"

    def _first_obs(self, key):
        return jnp.zeros((1,), jnp.float32)

    def _outcome(self, obs, count, action):
        last = count >= 1
        return jnp.ones((1,), jnp.float32), jnp.where(last, 1.0, 0.0), last


@dataclasses.dataclass(frozen=True)
class ProbeAction(_Probe):
    """Two actions, one step, reward +1 for action 1 and -1 for action 0: pick action 1."""

    name: ClassVar[str] = "probe/action"
    action_space = Discrete(2)

    def _outcome(self, obs, count, action):
        return obs, jnp.where(action == 1, 1.0, -1.0), True


@dataclasses.dataclass(frozen=True)
class ProbeContinuous(_Probe):
    """Action in [-1, 1], one step, reward -(a - 0.5)^2: the policy's mean action -> 0.5."""

    name: ClassVar[str] = "probe/continuous"
    action_space = Box(size=1, low=-1.0, high=1.0)

    def _outcome(self, obs, count, action):
        return obs, -((jnp.reshape(action, ()) - 0.5) ** 2), True


@dataclasses.dataclass(frozen=True)
class ProbeTimeLimit(_Probe):
    """Reward +1 forever, truncated (never terminated) every ``episode_length`` steps.

    With truncation bootstrapped as the contract says, V = 1 / (1 - gamma) at every step; a
    learner that treats the time limit as termination learns less, and less near the limit.
    """

    episode_length: int = 4
    name: ClassVar[str] = "probe/time_limit"

    def _outcome(self, obs, count, action):
        return obs, jnp.ones(()), False


@dataclasses.dataclass(frozen=True)
class ProbeLure(_Probe):
    """Two actions, one step, two terms: ``reward`` (= primary) is +1 for action 1, and a
    misleading auxiliary ``lure`` is +1 for action 0. With weights {reward: 1, lure: w} the
    weighted reward prefers action 0 when w > 1; a meta-learner of w must push it below 1."""

    name: ClassVar[str] = "probe/lure"
    action_space = Discrete(2)
    term_names = ("reward", "lure")

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        reward = jnp.where(action == 1, 1.0, 0.0)
        return transition_state(
            state,
            physics=state.physics,
            obs=state.physics,
            signals={"step": (state.step_count + 1).astype(jnp.float32)},
            terms={"reward": reward, "lure": 1.0 - reward},
            primary=reward,
            terminated=True,
        )
