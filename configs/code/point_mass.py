"""A user's own env, loaded from this file by ``env.name: code/point_mass.py:PointMass``
(configs/point_mass_user.yaml): a point mass on a plane pushed toward a goal.

It follows the env protocol (rlx.core.types.Env) as the built-in envs do: a frozen dataclass whose
fields are its typed config (``env.params``), pure ``reset``/``step`` for one env, and named,
unweighted reward terms; the reward layer weights them.
"""

import dataclasses

import jax
import jax.numpy as jnp

from rlx.core.types import Box
from rlx.envs.base import make_state, transition_state


@dataclasses.dataclass(frozen=True)
class PointMass:
    """Observation: [position (2), velocity (2), goal - position (2)]. Action: a force in
    [-1, 1]^2. Terms: ``distance`` to the goal, ``at_goal`` (1 within ``tolerance``),
    ``ctrl_cost`` = |force|^2. Primary: -distance. Signals: ``distance``, ``speed``."""

    episode_length: int = 100
    dt: float = 0.1
    damping: float = 0.5
    tolerance: float = 0.1
    name = "point_mass"
    term_names = ("distance", "at_goal", "ctrl_cost")
    signal_names = ("distance", "speed")

    @property
    def action_space(self) -> Box:
        return Box(size=2, low=-1.0, high=1.0)

    def _observe(self, physics):
        position, velocity, goal = physics
        obs = jnp.concatenate([position, velocity, goal - position])
        signals = {
            "distance": jnp.linalg.norm(goal - position),
            "speed": jnp.linalg.norm(velocity),
        }
        return obs, signals

    def reset(self, key):
        key, start_key, goal_key = jax.random.split(key, 3)
        position = jax.random.uniform(start_key, (2,), minval=-1.0, maxval=1.0)
        goal = jax.random.uniform(goal_key, (2,), minval=-1.0, maxval=1.0)
        physics = jnp.stack([position, jnp.zeros(2), goal])
        obs, signals = self._observe(physics)
        return make_state(
            physics=physics, obs=obs, signals=signals, term_names=self.term_names, key=key
        )

    def step(self, state, action):
        position, velocity, goal = state.physics
        force = jnp.clip(action, -1.0, 1.0)
        velocity = velocity + self.dt * (force - self.damping * velocity)
        position = jnp.clip(position + self.dt * velocity, -2.0, 2.0)
        physics = jnp.stack([position, velocity, goal])
        obs, signals = self._observe(physics)
        terms = {
            "distance": signals["distance"],
            "at_goal": (signals["distance"] < self.tolerance).astype(jnp.float32),
            "ctrl_cost": jnp.sum(force**2),
        }
        return transition_state(
            state,
            physics=physics,
            obs=obs,
            signals=signals,
            terms=terms,
            primary=-signals["distance"],
            terminated=False,
        )
