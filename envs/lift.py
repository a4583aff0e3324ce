"""MJX lifting: a two-finger gripper on an x-y-z gantry picks a ball off the floor.

The MJCF is written here (Menagerie cannot be fetched): a palm on three slide joints with
gravity compensation, two fingers on slide joints closing toward each other, and a ball on a
free joint on a floor plane. Every joint is position-controlled, so an action in [-1, 1] is a
target in the joint's range (the gantry's x, y, z, then each finger's closing). Only the ball
collides (with the floor and with the two capsule fingers): at most 3 contacts, which keeps the
XLA program small. A scripted grasp (above the ball, down, close, up) lifts it in
``tests/test_lift.py``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import EnvState
from rlx.envs.base import make_state, transition_state
from rlx.envs.mjx_base import MjxEnv, scale_action
from rlx.envs.reach import check_primary_objective, on_last_step
from rlx.envs.scene import Stage
from rlx.rewards.terms import control_cost
from rlx.rewards.terms import distance as distance_between

BALL_RADIUS = 0.02
FINGER_RADIUS = 0.006
FINGER_HALF_LENGTH = 0.02
GRIPPER_HEIGHT = 0.12  # the palm's rest height; the grasp site hangs 0.035 m under it
PRIMARY_OBJECTIVES = ("height", "final_success")

LIFT_XML = f"""
<mujoco model="rlx_lift">
  <option timestep="0.005" solver="Newton" iterations="4" ls_iterations="6" cone="pyramidal"/>
  <default><geom friction="1.5 0.005 0.0001"/></default>
  <worldbody>
    <light pos="0 0 1" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="0.4 0.4 0.01" contype="1" conaffinity="1"
          rgba="0.8 0.8 0.8 1"/>
    <body name="gripper" pos="0 0 {GRIPPER_HEIGHT}" gravcomp="1">
      <joint name="grip_x" type="slide" axis="1 0 0" damping="10" range="-0.15 0.15"/>
      <joint name="grip_y" type="slide" axis="0 1 0" damping="10" range="-0.15 0.15"/>
      <joint name="grip_z" type="slide" axis="0 0 1" damping="10" range="-0.1 0.1"/>
      <geom name="palm" type="box" size="0.012 0.035 0.006" mass="0.2" contype="0"
            conaffinity="0" rgba="0.3 0.3 0.8 1"/>
      <site name="grasp" pos="0 0 -0.035" size="0.004"/>
      <body name="finger_l" pos="0 0.03 -0.03" gravcomp="1">
        <joint name="finger_l" type="slide" axis="0 -1 0" range="0 0.03" damping="2"/>
        <geom name="finger_l" type="capsule" fromto="0 0 0.025 0 0 -0.015"
              size="{FINGER_RADIUS}" mass="0.02" contype="2" conaffinity="0"
              rgba="0.3 0.3 0.8 1"/>
      </body>
      <body name="finger_r" pos="0 -0.03 -0.03" gravcomp="1">
        <joint name="finger_r" type="slide" axis="0 1 0" range="0 0.03" damping="2"/>
        <geom name="finger_r" type="capsule" fromto="0 0 0.025 0 0 -0.015"
              size="{FINGER_RADIUS}" mass="0.02" contype="2" conaffinity="0"
              rgba="0.3 0.3 0.8 1"/>
      </body>
    </body>
    <body name="ball" pos="0 0 {BALL_RADIUS}">
      <freejoint name="ball"/>
      <geom name="ball" type="sphere" size="{BALL_RADIUS}" mass="0.05" contype="1"
            conaffinity="3" rgba="0.2 0.8 0.3 1"/>
    </body>
  </worldbody>
  <actuator>
    <position joint="grip_x" kp="60" ctrlrange="-0.15 0.15"/>
    <position joint="grip_y" kp="60" ctrlrange="-0.15 0.15"/>
    <position joint="grip_z" kp="60" ctrlrange="-0.1 0.1"/>
    <position joint="finger_l" kp="30" ctrlrange="0 0.03"/>
    <position joint="finger_r" kp="30" ctrlrange="0 0.03"/>
  </actuator>
</mujoco>
"""


def _segment_distance(point: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """Distance from ``point`` [3] to the segment a-b."""
    ab = b - a
    t = jnp.clip(jnp.dot(point - a, ab) / jnp.maximum(jnp.dot(ab, ab), 1e-12), 0.0, 1.0)
    return jnp.linalg.norm(point - (a + t * ab))


@dataclasses.dataclass(frozen=True)
class Lift(MjxEnv):
    """A gantry gripper (5 position-controlled joints, actions in [-1, 1]) lifting a ball;
    never terminates.

    Each reset puts the ball at rest on the floor at x, y uniform in +-``ball_range`` and the
    gripper open at the centre, ``GRIPPER_HEIGHT`` up. Observation [19]: the grasp point
    (x, y, z) and the gantry's velocities, both finger openings and their velocities, the
    ball's position and velocity, and the ball minus the grasp point.

    Terms (unweighted, after the step): ``hand_object_distance`` (grasp point to ball centre,
    m), ``object_height`` (the ball's height above its resting height, m), ``grasped`` (1
    while both fingers touch the ball, within ``touch_margin``), ``lifted`` (1 while
    ``object_height >= lift_height``), ``success`` (the same as ``lifted``, so that
    ``eval/success`` is the share of eval episodes whose last step has the ball up),
    ``ctrl_cost`` (sum of squared actions) and ``progress``
    (the rise of the ball during the step, m).
    Primary (``primary_objective``): ``'height'`` (default), the ball's height capped at
    ``lift_height`` every step (throwing it higher pays nothing more); ``'final_success'``,
    ``lifted`` on the episode's last step.
    Signals: ``hand_object_distance``, ``object_height``, ``object_x``, ``object_y``,
    ``grasp_x``, ``grasp_y``, ``grasp_z``, ``finger_gap`` (between the fingers' surfaces, m).
    """

    episode_length: int = 100
    frames_per_step: int = 4
    lift_height: float = 0.06
    ball_range: float = 0.08
    touch_margin: float = 0.003
    primary_objective: str = "height"
    impl: str = "jax"  # physics: jax (MJX), warp (MuJoCo Warp, a CUDA GPU), c (MuJoCo's C engine)
    physics_fields: ClassVar[tuple[str, ...]] = ("geom_xmat", "geom_xpos", "site_xpos", "xpos")
    name: ClassVar[str] = "lift"

    term_names = (
        "hand_object_distance",
        "object_height",
        "grasped",
        "lifted",
        "success",
        "ctrl_cost",
        "progress",
    )
    signal_names = (
        "hand_object_distance",
        "object_height",
        "object_x",
        "object_y",
        "grasp_x",
        "grasp_y",
        "grasp_z",
        "finger_gap",
    )

    def __post_init__(self):
        check_primary_objective(self.primary_objective, PRIMARY_OBJECTIVES)
        if not 0 <= self.ball_range <= 0.12:
            raise ValueError("ball_range must be in [0, 0.12] (the gantry reaches 0.15 m)")
        super().__post_init__()

    # drawn from the front and above, the gantry's reach and the lift height in view
    stage: ClassVar[Stage] = Stage(
        lookat=(0.0, 0.0, 0.04), distance=0.45, elevation=30.0, azimuth=60.0, floor="floor"
    )

    def _mjcf(self) -> str:
        return LIFT_XML

    @functools.cached_property
    def _ids(self) -> tuple[int, int, int, int]:
        return (
            self.object_id("site", "grasp"),
            self.object_id("body", "ball"),
            self.object_id("geom", "finger_l"),
            self.object_id("geom", "finger_r"),
        )

    def _observe(self, data) -> tuple[jax.Array, dict[str, jax.Array]]:
        site, ball, left, right = self._ids
        grasp = data.site_xpos[site]
        ball_pos = data.xpos[ball]
        # qpos: gantry x, y, z, finger l, r, then the ball's free joint (position, quaternion).
        obs = jnp.concatenate(
            [grasp, data.qvel[:3], data.qpos[3:5], data.qvel[3:5], ball_pos, data.qvel[5:8]]
            + [ball_pos - grasp]
        )
        gap = data.geom_xpos[left, 1] - data.geom_xpos[right, 1] - 2 * FINGER_RADIUS
        signals = {
            "hand_object_distance": distance_between(grasp, ball_pos),
            "object_height": ball_pos[2] - BALL_RADIUS,
            "object_x": ball_pos[0],
            "object_y": ball_pos[1],
            "grasp_x": grasp[0],
            "grasp_y": grasp[1],
            "grasp_z": grasp[2],
            "finger_gap": gap,
        }
        return obs, signals

    def _touching(self, data) -> jax.Array:
        """1 when both fingers' capsules are within ``touch_margin`` of the ball."""
        _, ball, left, right = self._ids
        centre = data.xpos[ball]
        touching = []
        for geom in (left, right):
            axis = data.geom_xmat[geom].reshape(3, 3)[:, 2] * FINGER_HALF_LENGTH
            gap = _segment_distance(
                centre, data.geom_xpos[geom] - axis, data.geom_xpos[geom] + axis
            )
            touching.append(gap - FINGER_RADIUS - BALL_RADIUS <= self.touch_margin)
        return jnp.logical_and(*touching).astype(jnp.float32)

    def reset_with_model(self, model, key: jax.Array) -> EnvState:
        """``reset`` on ``model`` (an ``mjx.Model`` of this MJCF, e.g. domain-randomised)."""
        key, ball_key = jax.random.split(key)
        xy = jax.random.uniform(ball_key, (2,), minval=-self.ball_range, maxval=self.ball_range)
        ball = jnp.concatenate([xy, jnp.asarray([BALL_RADIUS]), jnp.asarray([1.0, 0.0, 0.0, 0.0])])
        qpos = jnp.concatenate([jnp.zeros(5), ball])
        data = self.physics.forward_at(model, qpos=qpos)
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
        height = signals["object_height"]
        lifted = (height >= self.lift_height).astype(jnp.float32)
        terms = {
            "hand_object_distance": signals["hand_object_distance"],
            "object_height": height,
            "grasped": self._touching(data),
            "lifted": lifted,
            "success": lifted,  # eval/success: its value on the episode's last step
            "ctrl_cost": control_cost(action),
            # state.signals: the state this step started from (post-reset after an auto-reset).
            "progress": height - state.signals["object_height"],
        }
        if self.primary_objective == "height":
            primary = jnp.minimum(height, self.lift_height)
        else:
            primary = on_last_step(state, self.episode_length, lifted)
        return transition_state(
            state,
            physics=data,
            obs=obs,
            signals=signals,
            terms=terms,
            primary=primary,
            terminated=jnp.zeros((), bool),
        )
