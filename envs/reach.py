"""MJX planar reaching: a 2-link arm moves its fingertip to a random target in the plane.

The MJCF is written here (no assets): two capsule links on hinge joints about z, driven by
motors, and a mocap body marking the target. Nothing collides (every geom has contype 0), so a
step is kinematics, dynamics and integration only; that keeps the XLA program small (see the
docs/envs.md for measured compile times and rates). ``push.py`` reuses the arm and ``ArmTask`` here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import EnvState
from rlx.envs.base import make_state, transition_state
from rlx.envs.mjx_base import MjxEnv, scale_action
from rlx.envs.scene import Stage
from rlx.rewards.terms import control_cost, progress, small_control, success, tolerance
from rlx.rewards.terms import distance as distance_between

# The arm both manipulation envs use: two 0.1 m capsules (reach 0.2 m) at height 0.02 above
# the origin, hinges about z. Armature and damping dominate the links' tiny inertia, so full
# torque (1 N m) gives a top joint speed of about 10 rad/s reached in about 0.1 s.
ARM_XML = """
    <body name="upper_arm" pos="0 0 0.02">
      <joint name="shoulder" type="hinge" axis="0 0 1" damping="0.1" armature="0.01"/>
      <geom name="upper_arm" type="capsule" fromto="0 0 0 0.1 0 0" size="0.01"
            contype="{arm_contype}" conaffinity="0" condim="1" rgba="0.3 0.5 0.8 1"/>
      <body name="forearm" pos="0.1 0 0">
        <joint name="elbow" type="hinge" axis="0 0 1" damping="0.1" armature="0.01"/>
        <geom name="forearm" type="capsule" fromto="0 0 0 0.1 0 0" size="0.01"
              contype="{arm_contype}" conaffinity="0" condim="1" rgba="0.3 0.5 0.8 1"/>
        <site name="fingertip" pos="0.1 0 0" size="0.012" rgba="0.9 0.9 0.2 1"/>{finger}
      </body>
    </body>
"""
ARM_ACTUATORS_GEARED = """
  <actuator>
    <motor name="shoulder" joint="shoulder" gear="{gear}" ctrllimited="true" ctrlrange="-1 1"/>
    <motor name="elbow" joint="elbow" gear="{gear}" ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
"""
ARM_ACTUATORS = ARM_ACTUATORS_GEARED.format(gear=1)  # 1 N m at |action| = 1

# How reach and push are drawn (rlx.envs.scene): the arm's 0.2 m disc filling the frame, seen
# from 55 degrees above so that the plane reads, on 0.05 m squares, the shoulder on a post.
ARM_STAGE = Stage(
    distance=0.52, elevation=55.0, azimuth=90.0, floor_size=0.6, square=0.05, base=0.02
)

REACH_XML = f"""
<mujoco model="rlx_reach">
  <option timestep="0.01" iterations="1" ls_iterations="1"/>
  <worldbody>
    {ARM_XML.format(arm_contype=0, finger="")}
    <body name="target" mocap="true" pos="0.1 0.1 0.02">
      <geom type="sphere" size="0.012" contype="0" conaffinity="0" rgba="0.9 0.2 0.2 0.6"/>
    </body>
  </worldbody>
  {ARM_ACTUATORS}
</mujoco>
"""


def sample_in_annulus(key: jax.Array, radius_min: float, radius_max: float) -> jax.Array:
    """[2] point uniform (by area) in the annulus ``radius_min <= |p| <= radius_max``."""
    radius_key, angle_key = jax.random.split(key)
    u = jax.random.uniform(radius_key, (), minval=radius_min**2, maxval=radius_max**2)
    angle = jax.random.uniform(angle_key, (), minval=-jnp.pi, maxval=jnp.pi)
    return jnp.sqrt(u) * jnp.stack([jnp.cos(angle), jnp.sin(angle)])


def arm_observation(data) -> jax.Array:
    """[6] cos and sin of the two joint angles, and the two joint velocities."""
    angles = data.qpos[:2]
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles), data.qvel[:2]])


PRIMARY_OBJECTIVES = ("negative_distance", "final_success")


def check_primary_objective(value: str, options: tuple[str, ...] = PRIMARY_OBJECTIVES) -> None:
    if value not in options:
        raise ValueError(f"primary_objective must be one of {options}, got {value!r}")


def on_last_step(state: EnvState, episode_length: int, value: jax.Array) -> jax.Array:
    """``value`` on the episode's last step (step ``episode_length``), 0 before it: the
    ``final_success`` primary of the manipulation envs."""
    return jnp.where(state.step_count + 1 == episode_length, value, 0.0)


class ArmTask(MjxEnv):
    """What reach and push share: the arm's step, its common terms and its primary.

    A subclass is a frozen dataclass with ``episode_length``, ``frames_per_step``,
    ``success_threshold`` and ``primary_objective`` fields; it names the signal the task drives
    to zero (``distance_signal``) and defines ``_observe(data) -> (obs, signals)``, its reset
    (through ``_first_state``) and any further terms (``_extra_terms``). Every step reports
    the distance (under the signal's name), ``ctrl_cost``, ``success`` (distance below
    ``success_threshold``) and ``progress`` (decrease of the distance during the step); the
    primary is -distance (``'negative_distance'``) or the success indicator on the episode's
    last step (``'final_success'``). Never terminates.
    """

    distance_signal: ClassVar[str]

    def __post_init__(self):
        check_primary_objective(self.primary_objective)
        super().__post_init__()

    def _extra_terms(self, signals: dict, action: jax.Array) -> dict[str, jax.Array]:
        return {}

    def _first_state(self, model, key: jax.Array, qpos: jax.Array, mocap_xy) -> EnvState:
        """The episode's first EnvState at ``qpos``, mocap body 0 (the target) at ``mocap_xy``."""
        data = self.physics.forward_at(model, qpos=qpos, mocap_xy=mocap_xy)
        obs, signals = self._observe(data)
        return make_state(
            physics=data, obs=obs, signals=signals, term_names=self.term_names, key=key
        )

    def step_with_model(self, model, state: EnvState, action: jax.Array) -> EnvState:
        """``step`` on ``model`` (an ``mjx.Model`` of this MJCF, e.g. domain-randomised)."""
        ctrl = scale_action(model, action)
        data = self.physics.step(
            model, state.physics, ctrl, self.frames_per_step, positions_after=True
        )
        obs, signals = self._observe(data)
        distance = signals[self.distance_signal]
        reached = success(distance, self.success_threshold)
        terms = {
            self.distance_signal: distance,
            "ctrl_cost": control_cost(action),
            "success": reached,
            # state.signals: the state this step started from (post-reset after an auto-reset).
            "progress": progress(state.signals[self.distance_signal], distance),
            **self._extra_terms(signals, action),
        }
        if self.primary_objective == "negative_distance":
            primary = -distance
        else:
            primary = on_last_step(state, self.episode_length, reached)
        return transition_state(
            state,
            physics=data,
            obs=obs,
            signals=signals,
            terms=terms,
            primary=primary,
            terminated=jnp.zeros((), bool),
        )


@dataclasses.dataclass(frozen=True)
class Reach(ArmTask):
    """Planar 2-link arm (2 motors, actions in [-1, 1]) reaching a target; never terminates.

    Each reset draws the target uniformly (by area) in the annulus ``target_radius_min`` ..
    ``target_radius_max`` around the shoulder (the arm reaches 0.2 m) and the joint angles
    uniformly in +-``reset_angle_range``. Observation [10]: cos and sin of the joint angles,
    joint velocities, target x, y, and fingertip minus target x, y.

    Terms (unweighted, at the state after the step): ``distance`` (fingertip to target, m,
    positive), ``ctrl_cost`` (sum of squared actions), ``success`` (1 when ``distance <
    success_threshold``), ``progress`` (decrease of the distance during this step), ``near``
    (dm_control-style tolerance(distance, [0, success_threshold], margin ``near_margin``,
    gaussian), in [0, 1]) and ``small_control`` ((4 + mean_i tolerance(a_i, margin 1,
    quadratic)) / 5, in [0.8, 1]): bounded terms for the product and geometric-mean
    combinations.
    Primary (``primary_objective``): ``'negative_distance'`` (default), -distance every step, so
    the primary return is minus the distance summed over the episode; ``'final_success'``, the
    success indicator on the episode's last step (step ``episode_length``) and 0 before it.
    Either way ``success`` is also a term, for the reward layer and logging.
    Signals: ``distance``, ``fingertip_x``, ``fingertip_y``, ``target_x``, ``target_y`` (so a
    potential Phi(s) = -distance can be built from them).
    """

    episode_length: int = 50
    frames_per_step: int = 2
    success_threshold: float = 0.02
    target_radius_min: float = 0.05
    target_radius_max: float = 0.19
    reset_angle_range: float = math.pi
    primary_objective: str = "negative_distance"
    near_margin: float = 0.1
    impl: str = "jax"  # physics: jax (MJX), warp (MuJoCo Warp, a CUDA GPU), c (MuJoCo's C engine)
    physics_fields: ClassVar[tuple[str, ...]] = ("site_xpos",)
    name: ClassVar[str] = "reach"

    term_names = ("distance", "ctrl_cost", "success", "progress", "near", "small_control")
    signal_names = ("distance", "fingertip_x", "fingertip_y", "target_x", "target_y")

    distance_signal: ClassVar[str] = "distance"

    def __post_init__(self):
        if not 0 <= self.target_radius_min <= self.target_radius_max:
            raise ValueError("need 0 <= target_radius_min <= target_radius_max")
        super().__post_init__()

    stage: ClassVar[Stage] = ARM_STAGE

    def _mjcf(self) -> str:
        return REACH_XML

    @functools.cached_property
    def _fingertip(self) -> int:
        return self.object_id("site", "fingertip")

    def _observe(self, data) -> tuple[jax.Array, dict[str, jax.Array]]:
        fingertip = data.site_xpos[self._fingertip, :2]
        target = data.mocap_pos[0, :2]
        obs = jnp.concatenate([arm_observation(data), target, fingertip - target])
        signals = {
            "distance": distance_between(fingertip, target),
            "fingertip_x": fingertip[0],
            "fingertip_y": fingertip[1],
            "target_x": target[0],
            "target_y": target[1],
        }
        return obs, signals

    def _extra_terms(self, signals: dict, action: jax.Array) -> dict[str, jax.Array]:
        distance = signals["distance"]
        return {
            "near": tolerance(distance, 0.0, self.success_threshold, margin=self.near_margin),
            "small_control": small_control(action),
        }

    def reset_with_model(self, model, key: jax.Array) -> EnvState:
        """``reset`` on ``model`` (an ``mjx.Model`` of this MJCF, e.g. domain-randomised)."""
        key, angle_key, target_key = jax.random.split(key, 3)
        span = self.reset_angle_range
        angles = jax.random.uniform(angle_key, (2,), minval=-span, maxval=span)
        target = sample_in_annulus(target_key, self.target_radius_min, self.target_radius_max)
        return self._first_state(model, key, angles, target)
