"""Domain randomisation for MJX envs: per-env scales of masses, friction and actuator gains.

``DomainRandomization(env, ...)`` wraps an MJX env that offers ``reset_with_model(model, key)``
and ``step_with_model(model, state, action)`` (humanoid, its tasks, reach, push). Each reset
draws, from the episode's key, a uniform scale per body (mass and inertia together), per geom
(sliding friction) and per actuator (gain and bias, so position actuators stay consistent) and
keeps them in the env state, so under ``vmap`` every env runs its own model. With the episode
wrapper's ``reset_mode: fresh`` each episode draws anew; with ``cached`` an env keeps its first
draw. Ranges are ``(low, high)`` multipliers; ``(1, 1)`` leaves a quantity alone. A renderer
gets the inner env's fields and the scaled model fields (``render_state``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import struct

from rlx.core.types import EnvState
from rlx.envs.scene import MODEL_PREFIX

# The model fields ``model_for`` scales (none changes what a frame shows; a renderer sets them
# all the same, so that it draws the model the episode ran on).
SCALED_FIELDS = (
    "body_mass",
    "body_inertia",
    "geom_friction",
    "actuator_gainprm",
    "actuator_biasprm",
)


@struct.dataclass
class RandomizedPhysics:
    """The inner env's physics and this env's scales: body [nbody], geom [ngeom], actuator
    [nu]."""

    physics: Any
    body_scale: jax.Array
    friction_scale: jax.Array
    gain_scale: jax.Array


class NotRandomizableError(TypeError):
    pass


def range_problem(bounds) -> str | None:
    """Why ``bounds`` is not a (low, high) range of scales with 0 < low <= high (None if it is)."""
    if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
        return f"expected [low, high] with 0 < low <= high, got {tuple(bounds)}"
    return None


@dataclasses.dataclass(frozen=True)
class DomainRandomization:
    """Samples model scales at every reset and steps the inner env on the scaled model."""

    env: Any
    mass: tuple[float, float] = (1.0, 1.0)
    friction: tuple[float, float] = (1.0, 1.0)
    actuator_gain: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        for method in ("reset_with_model", "step_with_model", "mjx_model"):
            if not hasattr(self.env, method):
                raise NotRandomizableError(
                    f"env {self.env.name!r} does not support domain randomisation (it has no "
                    f"{method}; MJX envs such as humanoid, reach and push do)"
                )
        for field in ("mass", "friction", "actuator_gain"):
            problem = range_problem(getattr(self, field))
            if problem is not None:
                raise ValueError(f"randomize.{field}: {problem}")

    def __getattr__(self, name):  # name, episode_length, action_space, term/signal names
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def _sample(self, key: jax.Array, model) -> RandomizedPhysics:
        k_body, k_geom, k_gain = jax.random.split(key, 3)

        def draw(k, shape, bounds):
            return jax.random.uniform(k, shape, minval=bounds[0], maxval=bounds[1])

        return RandomizedPhysics(
            physics=None,
            body_scale=draw(k_body, model.body_mass.shape, self.mass),
            friction_scale=draw(k_geom, (model.geom_friction.shape[0],), self.friction),
            gain_scale=draw(k_gain, (model.actuator_gainprm.shape[0],), self.actuator_gain),
        )

    def model_for(self, scales: RandomizedPhysics):
        """The inner env's mjx model with ``scales`` applied."""
        model = self.env.mjx_model
        body = scales.body_scale
        friction = model.geom_friction.at[:, 0].multiply(scales.friction_scale)
        return model.replace(
            body_mass=model.body_mass * body,
            body_inertia=model.body_inertia * body[:, None],
            geom_friction=friction,
            actuator_gainprm=model.actuator_gainprm * scales.gain_scale[:, None],
            actuator_biasprm=model.actuator_biasprm * scales.gain_scale[:, None],
        )

    def render_state(self, physics: RandomizedPhysics) -> dict:
        """The inner env's render fields and, as ``model.<field>``, the scaled model fields."""
        model = self.model_for(physics)
        fields = self.env.render_state(physics.physics)
        return fields | {MODEL_PREFIX + name: getattr(model, name) for name in SCALED_FIELDS}

    def push(self, physics: RandomizedPhysics, kick: jax.Array) -> RandomizedPhysics:
        """The inner env's ``push`` of its physics (``env.sim2real`` pushes)."""
        return physics.replace(physics=self.env.push(physics.physics, kick))

    def reset(self, key: jax.Array) -> EnvState:
        key, scale_key = jax.random.split(key)
        scales = self._sample(scale_key, self.env.mjx_model)
        state = self.env.reset_with_model(self.model_for(scales), key)
        return state.replace(physics=scales.replace(physics=state.physics))

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        scales = state.physics
        inner = state.replace(physics=scales.physics)
        out = self.env.step_with_model(self.model_for(scales), inner, action)
        return out.replace(physics=scales.replace(physics=out.physics))
