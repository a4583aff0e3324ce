"""MJX humanoid on the humanoid MJCF that Brax ships, with its reward kept as unweighted terms.

Physics and observation follow Brax's ``humanoid`` on the MJX backend (Newton solver, 1
iteration, 4 line-search steps, 5 frames of 3 ms per step), so the two can be compared; the
reward is not summed here: ``configs/humanoid*.yaml`` weight the terms (Brax's weights:
forward 1.25, alive 5, control -0.1).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import EnvState
from rlx.envs.base import make_state, transition_state
from rlx.envs.mjx_base import (
    MjxEnv,
    MujocoUnavailableError,  # noqa: F401  (importable from here, its first home)
    import_mujoco,
    put_model,
    scale_action,
)
from rlx.envs.scene import Stage, staged_model
from rlx.rewards.terms import alive_bonus, contact_cost, control_cost


def _mjcf_path() -> str:
    """The path of Brax's humanoid MJCF."""
    import_mujoco(
        "the humanoid env needs mujoco, mujoco-mjx and brax (for its MJCF)", "etils.epath"
    )
    from etils import epath

    return str(epath.resource_path("brax") / "envs/assets/humanoid.xml")


@functools.cache
def _model(solver_iterations: int, ls_iterations: int, impl: str = "jax"):
    """(mujoco.MjModel, mjx.Model) of Brax's humanoid MJCF with Brax's MJX solver settings."""
    path = _mjcf_path()  # a one-line MujocoUnavailableError when mujoco or brax is missing
    import mujoco

    model = mujoco.MjModel.from_xml_path(path)
    model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    model.opt.disableflags = model.opt.disableflags | mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    model.opt.iterations = solver_iterations
    model.opt.ls_iterations = ls_iterations
    return put_model(model, impl)


@dataclasses.dataclass(frozen=True)
class Humanoid(MjxEnv):
    """3D humanoid (17 actuators, actions in [-1, 1] scaled to the actuator ranges).

    Terms: ``forward_velocity`` (x velocity of the centre of mass, m/s), ``alive`` (1 while
    the torso height is in ``healthy_z_range``), ``ctrl_cost`` (sum of squared actions),
    ``constraint_cost`` (sum of squared joint-space constraint forces: contacts and limits).
    Primary: ``forward_velocity``. Signals: ``torso_height``, ``uprightness`` (z of the torso's
    up axis), ``forward_velocity``, ``x_position``.
    Terminates when the torso leaves ``healthy_z_range`` (if ``terminate_when_unhealthy``).
    """

    episode_length: int = 1000
    frames_per_step: int = 5
    healthy_z_min: float = 1.0
    healthy_z_max: float = 2.0
    reset_noise_scale: float = 0.01
    terminate_when_unhealthy: bool = True
    solver_iterations: int = 1
    ls_iterations: int = 4
    impl: str = "jax"  # physics: jax (MJX), warp (MuJoCo Warp, a CUDA GPU), c (MuJoCo's C engine)
    name: ClassVar[str] = "humanoid"
    physics_fields: ClassVar[tuple[str, ...]] = (
        "xipos", "xmat", "cinert", "cvel", "qfrc_actuator", "qfrc_constraint"
    )  # fmt: skip
    # The term that is the primary objective (rlx tune holds its weight fixed)
    primary_term: ClassVar[str | None] = "forward_velocity"

    term_names = ("forward_velocity", "alive", "ctrl_cost", "constraint_cost")
    signal_names = ("torso_height", "uprightness", "forward_velocity", "x_position")

    # drawn from the side and a little above, following the torso as it walks (its floor
    # dressed in 0.5 m squares)
    stage: ClassVar[Stage] = Stage(
        lookat=(0.0, 0.0, -0.2),
        distance=4.0,
        elevation=12.0,
        azimuth=90.0,
        track="torso",
        floor="floor",
        floor_size=100.0,
        square=0.5,
    )

    def _models(self):
        return _model(self.solver_iterations, self.ls_iterations, self.impl)

    def render_model(self):
        return staged_model(_mjcf_path(), self.stage, is_path=True)

    def _com(self, model, data) -> jax.Array:
        mass = jnp.asarray(model.body_mass[1:], jnp.float32)
        return jnp.sum(data.xipos[1:] * mass[:, None], axis=0) / jnp.sum(mass)

    def _observe(self, data) -> jax.Array:
        return jnp.concatenate(
            [
                data.qpos[2:],
                data.qvel,
                data.cinert[1:].ravel(),
                data.cvel[1:].ravel(),
                data.qfrc_actuator,
            ]
        )

    def _signals(self, model, data, forward_velocity) -> dict[str, jax.Array]:
        return {
            "torso_height": data.qpos[2],
            "uprightness": data.xmat[1, 2, 2],
            "forward_velocity": jnp.asarray(forward_velocity, jnp.float32),
            "x_position": self._com(model, data)[0],
        }

    def reset_with_model(self, model, key: jax.Array) -> EnvState:
        """``reset`` on ``model`` (an ``mjx.Model`` of this MJCF, e.g. domain-randomised)."""
        key, qpos_key, qvel_key = jax.random.split(key, 3)
        noise = self.reset_noise_scale
        qpos = model.qpos0 + jax.random.uniform(qpos_key, (model.nq,), minval=-noise, maxval=noise)
        qvel = jax.random.uniform(qvel_key, (model.nv,), minval=-noise, maxval=noise)
        data = self.physics.forward_at(model, qpos=qpos, qvel=qvel)
        return make_state(
            physics=data,
            obs=self._observe(data),
            signals=self._signals(model, data, 0.0),
            term_names=self.term_names,
            key=key,
        )

    def step_with_model(self, model, state: EnvState, action: jax.Array) -> EnvState:
        """``step`` on ``model`` (an ``mjx.Model`` of this MJCF, e.g. domain-randomised)."""
        before = state.physics
        ctrl = scale_action(model, action)
        data = self.physics.step(model, before, ctrl, self.frames_per_step)
        forward_velocity = (self._com(model, data)[0] - self._com(model, before)[0]) / self.dt
        height = data.qpos[2]
        healthy = (height > self.healthy_z_min) & (height < self.healthy_z_max)
        terms = {
            "forward_velocity": forward_velocity,
            "alive": alive_bonus(healthy),
            "ctrl_cost": control_cost(action),
            "constraint_cost": contact_cost(data.qfrc_constraint),
        }
        return transition_state(
            state,
            physics=data,
            obs=self._observe(data),
            signals=self._signals(model, data, forward_velocity),
            terms=terms,
            primary=forward_velocity,
            terminated=jnp.logical_not(healthy) & self.terminate_when_unhealthy,
        )
