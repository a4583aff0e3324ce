"""What a real robot adds to a simulator, per env, inside the compiled step: observation noise,
action latency, motor strength and random pushes (``env.sim2real``; all off by default).

``SimToReal(env, ...)`` wraps a raw env (inside the episode wrapper, outside domain
randomisation) and keeps its own per-env state in the physics (``SimPhysics``):

- **observation noise**: each observation group the env declares (``observation_groups``:
  names and sizes, in order, covering what the policy reads; one group ``obs`` where the env
  declares none) gets uniform noise in ``[-scale, scale]`` per entry and step
  (``obs_noise: {group: scale}``), as Playground's and legged_gym's envs add it. A privileged
  rest of the observation (the critic's alone, ``actor_observation_size``) stays exact, as do
  the reward terms and signals: they describe the simulator's true state.
- **action latency**: the env applies the action of ``k`` steps ago, ``k`` drawn per env and
  episode uniformly from ``action_delay: [low, high]`` (zeros before the first action). An
  observation group named ``last_action`` shows the policy's own last command, as a robot's
  computer knows it, not the delayed, scaled action the motors got.
- **motor strength**: continuous actions are scaled by a factor drawn per env and episode
  from ``motor_strength: [low, high]`` (after the delay: what the motors make of the command).
  An env whose actions are position targets (``actions_are_targets``: the joystick
  quadruped's PD servos) refuses it: scaling a target moves the pose, not the force; its
  servos' strength is ``env.randomize.actuator_gain`` (kp and kd scaled together).
- **pushes**: every ``push_interval: [low, high]`` steps (drawn anew after each push) the root
  body's planar velocity gets a kick uniform in ``[-push_velocity, push_velocity]`` per axis,
  before the step; the env must be ``pushable`` and offer ``push(physics, kick [2])`` (the
  MJX envs whose root is a free joint do).

The draws come from a key of the wrapper's own, split at reset from the episode's key and
advanced every step, so they are per env under ``vmap`` and exact on resume.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlx.core.types import Box, EnvState, actor_observation_size, observation_size


class NotPushableError(TypeError):
    """An env whose root cannot be pushed (no ``push``)."""


@struct.dataclass
class SimPhysics:
    """The inner env's physics and this env's sim-to-real state.

    Fields: delay [] int32 (steps), actions [max delay + 1, action...] (newest first),
    strength [] float32, push_countdown [] int32 (steps to the next push), key: the draws'.
    """

    physics: Any
    delay: jax.Array
    actions: jax.Array
    strength: jax.Array
    push_countdown: jax.Array
    key: jax.Array


def observation_groups(env) -> tuple[tuple[str, int], ...]:
    """The env's named observation groups (name, size) over what its policy reads; one group
    ``obs`` of that size where the env declares none."""
    groups = getattr(env, "observation_groups", None)
    if groups:
        return tuple(groups)
    return (("obs", actor_observation_size(env) or observation_size(env)),)


@dataclasses.dataclass(frozen=True)
class SimToReal:
    """Observation noise, action latency, motor strength and pushes around ``env``."""

    env: Any
    obs_noise: tuple[tuple[str, float], ...] = ()
    action_delay: tuple[int, int] = (0, 0)
    motor_strength: tuple[float, float] = (1.0, 1.0)
    push_interval: tuple[int, int] = (0, 0)
    push_velocity: float = 0.0

    def __post_init__(self):
        groups = observation_groups(self.env)
        names = [name for name, _ in groups]
        reads = actor_observation_size(self.env) or observation_size(self.env)
        if sum(size for _, size in groups) != reads:
            raise ValueError(
                f"{self.env.name!r}: its observation_groups cover "
                f"{sum(size for _, size in groups)} entries, but its policy reads {reads}"
            )
        for name, _ in self.obs_noise:
            if name not in names:
                raise ValueError(
                    f"obs_noise: {self.env.name!r} has no observation group {name!r} "
                    f"(its groups: {', '.join(names)})"
                )
        if self.motor_strength != (1.0, 1.0) and not isinstance(self.env.action_space, Box):
            raise ValueError("motor_strength scales continuous actions; this env's are discrete")
        if self.motor_strength != (1.0, 1.0) and getattr(self.env, "actions_are_targets", False):
            raise ValueError(
                f"motor_strength scales an action as a force, but {self.env.name!r}'s actions "
                "are position targets (PD servos): randomise the servos' gains with "
                "env.randomize.actuator_gain instead"
            )
        if self.pushes and not getattr(self.env, "pushable", False):
            raise NotPushableError(
                f"push_interval: env {self.env.name!r} cannot be pushed (the MJX envs whose "
                "root is a free joint can: humanoid and its tasks, the joystick quadruped)"
            )

    def __getattr__(self, name):  # name, episode_length, action_space, term/signal names, ...
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def pushes(self) -> bool:
        return self.push_interval[1] > 0 and self.push_velocity > 0

    def _noise_scale(self) -> jax.Array | None:
        """[actor entries] the noise scale of each entry the policy reads, or None (none)."""
        scales = dict(self.obs_noise)
        if not any(scales.values()):
            return None
        parts = [jnp.full((size,), scales.get(name, 0.0), jnp.float32)
                 for name, size in observation_groups(self.env)]  # fmt: skip
        return jnp.concatenate(parts)

    def _noisy(self, state: EnvState, key: jax.Array) -> EnvState:
        """``state`` with noise on the policy's entries of ``obs`` and ``next_obs``."""
        scale = self._noise_scale()
        if scale is None:
            return state
        noise = jax.random.uniform(key, scale.shape, minval=-1.0, maxval=1.0) * scale
        pad = state.obs.shape[-1] - scale.shape[0]  # the privileged rest: exact
        noise = jnp.concatenate([noise, jnp.zeros((pad,), jnp.float32)])
        return state.replace(obs=state.obs + noise, next_obs=state.next_obs + noise)

    def _draw_countdown(self, key: jax.Array) -> jax.Array:
        low, high = self.push_interval
        return jax.random.randint(key, (), max(low, 1), max(high, 1) + 1)

    def reset(self, key: jax.Array) -> EnvState:
        key, own = jax.random.split(key)
        state = self.env.reset(key)
        k_delay, k_strength, k_push, k_noise, own = jax.random.split(own, 5)
        space = self.env.action_space
        action_shape = (space.size,) if isinstance(space, Box) else ()
        dtype = jnp.float32 if isinstance(space, Box) else jnp.int32
        low, high = self.action_delay
        physics = SimPhysics(
            physics=state.physics,
            delay=jax.random.randint(k_delay, (), low, high + 1),
            actions=jnp.zeros((high + 1, *action_shape), dtype),
            strength=jax.random.uniform(
                k_strength, (), minval=self.motor_strength[0], maxval=self.motor_strength[1]
            ),
            push_countdown=self._draw_countdown(k_push),
            key=own,
        )
        return self._noisy(state.replace(physics=physics), k_noise)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        sim = state.physics
        key, k_noise, k_kick, k_push = jax.random.split(sim.key, 4)
        actions = jnp.concatenate([action[None].astype(sim.actions.dtype), sim.actions[:-1]])
        applied = actions[sim.delay]
        if isinstance(self.env.action_space, Box):
            applied = applied * sim.strength
        inner = sim.physics
        countdown = sim.push_countdown
        if self.pushes:
            push_now = countdown <= 1
            kick = jax.random.uniform(
                k_kick, (2,), minval=-self.push_velocity, maxval=self.push_velocity
            )
            inner = self.env.push(inner, jnp.where(push_now, kick, 0.0))
            countdown = jnp.where(push_now, self._draw_countdown(k_push), countdown - 1)
        out = self.env.step(state.replace(physics=inner), applied)
        physics = sim.replace(
            physics=out.physics, actions=actions, push_countdown=countdown, key=key
        )
        return self._noisy(self._commanded(out.replace(physics=physics), action), k_noise)

    def _commanded(self, state: EnvState, action: jax.Array) -> EnvState:
        """A group named ``last_action`` observes what the policy commanded (what a robot's
        computer knows), not the delayed, scaled action the env applied."""
        start = 0
        for name, size in observation_groups(self.env):
            if name == "last_action":
                command = jnp.reshape(action, (size,)).astype(state.obs.dtype)
                obs = state.obs.at[start : start + size].set(command)
                next_obs = state.next_obs.at[start : start + size].set(command)
                return state.replace(obs=obs, next_obs=next_obs)
            start += size
        return state

    def render_state(self, physics: SimPhysics) -> dict:
        return self.env.render_state(physics.physics)
