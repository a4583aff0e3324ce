"""Pendulum swing-up (Gym's Pendulum-v1 dynamics), continuous torque, in pure JAX."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import Box, EnvState
from rlx.envs.base import make_state, transition_state


def _angle_normalize(theta: jax.Array) -> jax.Array:
    return ((theta + jnp.pi) % (2 * jnp.pi)) - jnp.pi


@dataclasses.dataclass(frozen=True)
class Pendulum:
    """Swing a pendulum up and hold it; never terminates, truncated at ``episode_length``.

    Observation: [cos theta, sin theta, theta_dot]. Action: torque in [-max_torque, max_torque].
    Terms (unweighted, positive costs): ``angle_cost`` = theta^2, ``velocity_cost`` = theta_dot^2,
    ``ctrl_cost`` = u^2, all at the state before the step, as Gym does.
    Primary: Gym's reward, -(theta^2 + 0.1 theta_dot^2 + 0.001 u^2).
    Signals: ``angle`` (0 upright), ``angular_velocity``, ``uprightness`` (cos theta).
    """

    episode_length: int = 200
    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    gravity: float = 10.0
    mass: float = 1.0
    length: float = 1.0
    name: ClassVar[str] = "pendulum"

    term_names = ("angle_cost", "velocity_cost", "ctrl_cost")
    signal_names = ("angle", "angular_velocity", "uprightness")

    @property
    def action_space(self) -> Box:
        return Box(size=1, low=-self.max_torque, high=self.max_torque)

    def _observe(self, physics: jax.Array):
        theta, theta_dot = physics
        obs = jnp.stack([jnp.cos(theta), jnp.sin(theta), theta_dot])
        signals = {
            "angle": _angle_normalize(theta),
            "angular_velocity": theta_dot,
            "uprightness": jnp.cos(theta),
        }
        return obs, signals

    def reset(self, key: jax.Array) -> EnvState:
        key, init_key = jax.random.split(key)
        high = jnp.array([jnp.pi, 1.0], jnp.float32)
        physics = jax.random.uniform(init_key, (2,), jnp.float32, -high, high)
        obs, signals = self._observe(physics)
        return make_state(
            physics=physics, obs=obs, signals=signals, term_names=self.term_names, key=key
        )

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        theta, theta_dot = state.physics
        torque = jnp.clip(jnp.reshape(action, ()), -self.max_torque, self.max_torque)
        terms = {
            "angle_cost": _angle_normalize(theta) ** 2,
            "velocity_cost": theta_dot**2,
            "ctrl_cost": torque**2,
        }
        primary = -(terms["angle_cost"] + 0.1 * terms["velocity_cost"] + 0.001 * terms["ctrl_cost"])
        g, m, length = self.gravity, self.mass, self.length
        new_theta_dot = (
            theta_dot
            + (3 * g / (2 * length) * jnp.sin(theta) + 3.0 / (m * length**2) * torque) * self.dt
        )
        new_theta_dot = jnp.clip(new_theta_dot, -self.max_speed, self.max_speed)
        physics = jnp.stack([theta + new_theta_dot * self.dt, new_theta_dot])
        obs, signals = self._observe(physics)
        return transition_state(
            state,
            physics=physics,
            obs=obs,
            signals=signals,
            terms=terms,
            primary=primary,
            terminated=False,
        )
