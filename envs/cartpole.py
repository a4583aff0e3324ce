"""CartPole-v1 with the classic dynamics (Barto et al. 1983, as in Gym), in pure JAX."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.envs.base import Discrete, EnvState, make_state, transition_state


@dataclasses.dataclass(frozen=True)
class CartPole:
    """Balance a pole on a cart by pushing left (0) or right (1).

    Terms: ``alive`` (1 every step, the last included, as in Gym). Primary: +1 per step.
    Signals: ``cart_position``, ``cart_velocity``, ``pole_angle``, ``pole_angular_velocity``.
    Terminates at |x| > ``x_threshold`` or |theta| > ``theta_threshold_degrees``.
    """

    episode_length: int = 500
    gravity: float = 9.8
    cart_mass: float = 1.0
    pole_mass: float = 0.1
    pole_half_length: float = 0.5
    force_magnitude: float = 10.0
    dt: float = 0.02
    x_threshold: float = 2.4
    theta_threshold_degrees: float = 12.0
    name: ClassVar[str] = "cartpole"

    action_space = Discrete(2)
    term_names = ("alive",)
    signal_names = ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")

    def _signals(self, physics: jax.Array) -> dict[str, jax.Array]:
        return dict(zip(self.signal_names, physics, strict=True))

    def reset(self, key: jax.Array) -> EnvState:
        key, init_key = jax.random.split(key)
        physics = jax.random.uniform(init_key, (4,), jnp.float32, -0.05, 0.05)
        return make_state(
            physics=physics,
            obs=physics,
            signals=self._signals(physics),
            term_names=self.term_names,
            key=key,
        )

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        x, x_dot, theta, theta_dot = state.physics
        force = jnp.where(action == 1, self.force_magnitude, -self.force_magnitude)
        total_mass = self.cart_mass + self.pole_mass
        pole_moment = self.pole_mass * self.pole_half_length
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        temp = (force + pole_moment * theta_dot**2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.pole_half_length * (4.0 / 3.0 - self.pole_mass * cos**2 / total_mass)
        )
        x_acc = temp - pole_moment * theta_acc * cos / total_mass
        # Explicit Euler, in Gym's order.
        physics = jnp.stack(
            [
                x + self.dt * x_dot,
                x_dot + self.dt * x_acc,
                theta + self.dt * theta_dot,
                theta_dot + self.dt * theta_acc,
            ]
        )
        theta_limit = self.theta_threshold_degrees * 2 * jnp.pi / 360
        terminated = (jnp.abs(physics[0]) > self.x_threshold) | (jnp.abs(physics[2]) > theta_limit)
        return transition_state(
            state,
            physics=physics,
            obs=physics,
            signals=self._signals(physics),
            terms={"alive": 1.0},
            primary=1.0,
            terminated=terminated,
        )
