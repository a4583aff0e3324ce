"""CartPole-v1 with the classic dynamics (Barto et al. 1983, as in Gym), in pure JAX."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.schema import field, one_of
from rlx.core.types import Discrete, EnvState
from rlx.envs.base import make_state, transition_state

OBSERVATIONS = ("full", "positions", "positions_privileged")


@dataclasses.dataclass(frozen=True)
class CartPole:
    """Balance a pole on a cart by pushing left (0) or right (1).

    Terms: ``alive`` (1 every step, the last included, as in Gym), and two auxiliary terms from
    BARFI (Gupta et al. 2023) that compare the action with a PD controller on the pole angle,
    ``a_PD = 1 iff pd_p * theta + pd_d * (theta - previous theta) > 0`` (BARFI's
    ``round(sigmoid(.))``; the angle change is 0 on an episode's first step), both taken at the
    state before the step: ``pd_agree`` (+1 if the action is a_PD, else 0: the helpful
    heuristic) and ``pd_anti`` (-5 if the action is a_PD, else +1: the misspecified one). Both
    are 0 on the terminal step. Primary: +1 per step.
    Signals: ``cart_position``, ``cart_velocity``, ``pole_angle``, ``pole_angular_velocity``.
    Terminates at |x| > ``x_threshold`` or |theta| > ``theta_threshold_degrees``.

    ``physics`` is [x, x_dot, theta, theta_dot, previous theta]. ``observation``: ``full``
    observes its first four; ``positions`` only [x, theta] (a memory probe: the velocities are
    hidden, so a policy must recall earlier observations); ``positions_privileged`` observes
    [x, theta, x_dot, theta_dot], of which the policy reads [x, theta] and the critic all
    (``actor_observation_size`` = 2: an asymmetric actor-critic).
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
    pd_p: float = 0.1
    pd_d: float = 0.5
    observation: str = field("full", one_of(OBSERVATIONS), "what the policy observes")
    name: ClassVar[str] = "cartpole"

    @property
    def observation_groups(self) -> tuple[tuple[str, int], ...]:
        """The named entries the policy reads (``env.sim2real.obs_noise`` scales them)."""
        if self.observation == "full":
            return tuple((name, 1) for name in self.signal_names)
        return (("cart_position", 1), ("pole_angle", 1))

    @property
    def actor_observation_size(self) -> int | None:
        """2 (x, theta) where the velocities are the critic's alone, else None (all)."""
        return 2 if self.observation == "positions_privileged" else None

    def _obs(self, physics: jax.Array) -> jax.Array:
        if self.observation == "full":
            return physics[:4]
        positions = jnp.stack([physics[0], physics[2]])
        if self.observation == "positions":
            return positions
        return jnp.concatenate([positions, jnp.stack([physics[1], physics[3]])])

    action_space = Discrete(2)
    term_names = ("alive", "pd_agree", "pd_anti")
    signal_names = ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")

    def _signals(self, physics: jax.Array) -> dict[str, jax.Array]:
        return dict(zip(self.signal_names, physics[:4], strict=True))

    def pd_action(self, physics: jax.Array) -> jax.Array:
        """[] int32 action of BARFI's PD controller on the pole angle at ``physics``."""
        theta, previous_theta = physics[2], physics[4]
        return (self.pd_p * theta + self.pd_d * (theta - previous_theta) > 0).astype(jnp.int32)

    def reset(self, key: jax.Array) -> EnvState:
        key, init_key = jax.random.split(key)
        cart_pole = jax.random.uniform(init_key, (4,), jnp.float32, -0.05, 0.05)
        # Previous theta = theta: the PD controller's angle change is 0 on the first step.
        physics = jnp.append(cart_pole, cart_pole[2])
        return make_state(
            physics=physics,
            obs=self._obs(physics),
            signals=self._signals(physics),
            term_names=self.term_names,
            key=key,
        )

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        x, x_dot, theta, theta_dot, _ = state.physics
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
                theta,
            ]
        )
        theta_limit = self.theta_threshold_degrees * 2 * jnp.pi / 360
        terminated = (jnp.abs(physics[0]) > self.x_threshold) | (jnp.abs(physics[2]) > theta_limit)
        agrees = action == self.pd_action(state.physics)
        ongoing = jnp.logical_not(terminated)
        return transition_state(
            state,
            physics=physics,
            obs=self._obs(physics),
            signals=self._signals(physics),
            terms={
                "alive": 1.0,
                "pd_agree": jnp.where(ongoing & agrees, 1.0, 0.0),
                "pd_anti": jnp.where(ongoing, jnp.where(agrees, -5.0, 1.0), 0.0),
            },
            primary=1.0,
            terminated=terminated,
        )
