"""MJX planar pushing: the 2-link arm of ``reach.py`` (or, with ``effector: pusher``, a
fingertip moved in Cartesian space) pushes a puck to a random goal.

The puck is a sphere on two slide joints (x, y), so it moves in the plane without a floor
contact; viscous joint damping stands in for sliding friction. The only collisions are what
touches the puck (the two arm links, or the fingertip sphere) against it (contype/conaffinity),
frictionless (condim 1): at most 2 contacts and 2 constraint rows per step, which keeps the XLA
program small (measured in docs/envs.md).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import EnvState
from rlx.envs.reach import (
    ARM_ACTUATORS_GEARED,
    ARM_STAGE,
    ARM_XML,
    ArmTask,
    arm_observation,
    sample_in_annulus,
)
from rlx.envs.scene import Stage
from rlx.rewards.terms import distance as distance_between

PUCK_RADIUS = 0.02
CONTACTS = ("arm", "fingertip")
EFFECTORS = ("arm", "pusher")
FINGER_RADIUS = 0.01
CONTACT_RADIUS = PUCK_RADIUS + FINGER_RADIUS  # puck centre to fingertip when they touch


# contact="fingertip": a sphere at the fingertip (the capsule's end), the only geom that touches
# the puck; the links pass over it, as an arm above a table with a finger reaching down to it.
FINGER = f"""
        <geom name="finger" type="sphere" pos="0.1 0 0" size="{FINGER_RADIUS}" mass="0.001"
              contype="1" conaffinity="0" condim="1" rgba="0.9 0.9 0.2 1"/>"""


# effector="pusher": the fingertip alone, on two slide joints in the plane, driven by velocity
# servos (an action is the fingertip's velocity, as FetchPush's mocap gripper is moved in
# Cartesian space); it starts near the origin, where the arm's shoulder is.
PUSHER_XML = f"""
    <body name="pusher" pos="0 0 0.02">
      <joint name="pusher_x" type="slide" axis="1 0 0"/>
      <joint name="pusher_y" type="slide" axis="0 1 0"/>
      <geom name="finger" type="sphere" size="{FINGER_RADIUS}" mass="0.1" contype="1"
            conaffinity="0" condim="1" rgba="0.9 0.9 0.2 1"/>
      <site name="fingertip" pos="0 0 0" size="0.012" rgba="0.9 0.9 0.2 1"/>
    </body>
"""
PUSHER_ACTUATORS = """
  <actuator>
    <velocity name="pusher_x" joint="pusher_x" kv="{kv}" ctrllimited="true"
              ctrlrange="-{speed} {speed}"/>
    <velocity name="pusher_y" joint="pusher_y" kv="{kv}" ctrllimited="true"
              ctrlrange="-{speed} {speed}"/>
  </actuator>
"""
PUSHER_KV = 5.0  # N s/m: with the 0.1 kg finger, a 0.02 s velocity time constant


def _push_xml(
    solver_iterations: int,
    ls_iterations: int,
    gear: float,
    contact: str,
    effector: str = "arm",
    pusher_speed: float = 0.5,
) -> str:
    if effector == "pusher":
        body = PUSHER_XML
        actuators = PUSHER_ACTUATORS.format(kv=PUSHER_KV, speed=pusher_speed)
    else:
        links = 1 if contact == "arm" else 0
        finger = FINGER if contact == "fingertip" else ""
        body = ARM_XML.format(arm_contype=links, finger=finger)
        actuators = ARM_ACTUATORS_GEARED.format(gear=gear)
    return f"""
<mujoco model="rlx_push">
  <option timestep="0.01" solver="Newton" iterations="{solver_iterations}"
          ls_iterations="{ls_iterations}"/>
  <worldbody>
    {body}
    <body name="puck" pos="0 0 0.02">
      <joint name="puck_x" type="slide" axis="1 0 0" damping="1"/>
      <joint name="puck_y" type="slide" axis="0 1 0" damping="1"/>
      <geom name="puck" type="sphere" size="{PUCK_RADIUS}" mass="0.05" contype="0"
            conaffinity="1" condim="1" rgba="0.2 0.8 0.3 1"/>
    </body>
    <body name="goal" mocap="true" pos="0.1 0.1 0.02">
      <geom type="sphere" size="{PUCK_RADIUS}" contype="0" conaffinity="0"
            rgba="0.9 0.2 0.2 0.4"/>
    </body>
  </worldbody>
  {actuators}
</mujoco>
"""


def around_disc(p: jax.Array, q: jax.Array, centre: jax.Array, radius: float) -> jax.Array:
    """[] the shortest path from ``p`` [2] to ``q`` [2] (a point on the circle of ``radius``
    around ``centre``) that does not cross the disc: the straight line where it is clear, else
    the tangent from ``p`` and the arc to ``q``. ``p`` inside the disc counts as on its edge."""
    r = jnp.maximum(jnp.linalg.norm(p - centre), radius)
    cos_theta = jnp.dot(p - centre, q - centre) / (r * radius)
    theta = jnp.arccos(jnp.clip(cos_theta, -1.0, 1.0))  # p's and q's angle about the centre
    alpha = jnp.arccos(jnp.clip(radius / r, -1.0, 1.0))  # p's and its tangent point's
    tangent = jnp.sqrt(jnp.maximum(r**2 - radius**2, 0.0))
    return jnp.where(theta <= alpha, distance_between(p, q), tangent + radius * (theta - alpha))


@dataclasses.dataclass(frozen=True)
class Push(ArmTask):
    """Planar 2-link arm (2 motors, actions in [-1, 1]) pushing a puck to a goal; never terminates.

    Each reset draws the puck uniformly (by area) in the annulus ``radius_min`` .. ``radius_max``
    around the shoulder (the arm reaches 0.2 m; the puck's radius is 0.02 m) and the goal in the
    same annulus: independently of the puck (``goal_offset_max`` 0, the default), or
    ``goal_offset_min`` .. ``goal_offset_max`` m from it (as FetchPush draws its target near
    the object). It points the arm away from the puck (shoulder angle opposite the puck, both
    joints perturbed by up to +-``reset_angle_noise``), so the two never start overlapping.
    ``gear``: the motors' torque (N m) at |action| 1. ``contact``: what touches the puck,
    ``'arm'`` (both links, the default) or ``'fingertip'`` (a 0.01 m sphere at the fingertip;
    the links pass over the puck).
    ``effector``: what moves, ``'arm'`` (the 2-link arm, joint torques; the default) or
    ``'pusher'`` (the fingertip alone on x, y slide joints, an action its velocity in the
    plane up to ``pusher_speed`` m/s, as FetchPush moves its gripper in Cartesian space; it
    starts uniform in the disc of ``pusher_start_radius`` around the origin; needs ``contact:
    fingertip`` and the default ``gear``).
    Observation [16] (arm): cos and sin of the joint angles, joint velocities, puck x, y, puck
    velocity x, y, goal x, y, fingertip minus puck x, y, puck minus goal x, y. With the
    pusher [14]: its x, y and velocity x, y in place of the arm's six.

    Terms (unweighted, at the state after the step): ``object_goal_distance`` (puck centre to
    goal, m), ``hand_object_distance`` (fingertip to puck centre, m), ``ctrl_cost`` (sum of
    squared actions), ``success`` (1 when ``object_goal_distance < success_threshold``),
    ``progress`` (decrease of the object-goal distance during this step),
    ``pre_push_distance`` (how far the fingertip has to travel, going around the puck, to the
    point 0.03 m behind it on the goal's line, where it touches the puck to push it straight at
    the goal, m: ``around_disc``).
    Primary (``primary_objective``): ``'negative_distance'`` (default), -object_goal_distance
    every step; ``'final_success'``, the success indicator on the episode's last step and 0
    before it. ``success`` is a term either way.
    Signals: ``object_goal_distance``, ``hand_object_distance``, ``object_x``, ``object_y``,
    ``goal_x``, ``goal_y``, ``fingertip_x``, ``fingertip_y``, ``pre_push_distance``.
    """

    episode_length: int = 100
    frames_per_step: int = 2
    success_threshold: float = 0.03
    radius_min: float = 0.08
    radius_max: float = 0.16
    reset_angle_noise: float = 0.5
    goal_offset_min: float = 0.0
    goal_offset_max: float = 0.0
    gear: float = 1.0
    contact: str = "arm"
    effector: str = "arm"
    pusher_speed: float = 0.5
    pusher_start_radius: float = 0.03
    primary_objective: str = "negative_distance"
    solver_iterations: int = 1
    ls_iterations: int = 4
    impl: str = "jax"  # physics: jax (MJX), warp (MuJoCo Warp, a CUDA GPU), c (MuJoCo's C engine)
    physics_fields: ClassVar[tuple[str, ...]] = ("site_xpos", "xpos")
    name: ClassVar[str] = "push"

    term_names = (
        "object_goal_distance",
        "hand_object_distance",
        "ctrl_cost",
        "success",
        "progress",
        "pre_push_distance",
    )
    signal_names = (
        "object_goal_distance",
        "hand_object_distance",
        "object_x",
        "object_y",
        "goal_x",
        "goal_y",
        "fingertip_x",
        "fingertip_y",
        "pre_push_distance",
    )

    distance_signal: ClassVar[str] = "object_goal_distance"

    def __post_init__(self):
        if not 0 <= self.radius_min <= self.radius_max:
            raise ValueError("need 0 <= radius_min <= radius_max")
        if not 0 <= self.goal_offset_min <= self.goal_offset_max:
            raise ValueError("need 0 <= goal_offset_min <= goal_offset_max")
        if self.contact not in CONTACTS:
            raise ValueError(f"contact must be one of {CONTACTS}, got {self.contact!r}")
        if not self.gear > 0:
            raise ValueError(f"gear must be > 0 (N m at |action| = 1), got {self.gear}")
        if self.effector not in EFFECTORS:
            raise ValueError(f"effector must be one of {EFFECTORS}, got {self.effector!r}")
        if self.effector == "pusher":
            if self.contact != "fingertip" or self.gear != 1.0:
                raise ValueError(
                    "effector 'pusher' is the fingertip alone: it needs contact: fingertip and "
                    f"no gear (got contact {self.contact!r}, gear {self.gear}); its speed is "
                    "pusher_speed"
                )
            if not self.pusher_speed > 0:
                raise ValueError(f"pusher_speed must be > 0 (m/s), got {self.pusher_speed}")
            clearance = self.radius_min - self.pusher_start_radius - CONTACT_RADIUS
            if not (self.pusher_start_radius >= 0 and clearance > 0):
                raise ValueError(
                    "need 0 <= pusher_start_radius < radius_min - 0.03 (the pusher starts "
                    f"clear of the puck), got {self.pusher_start_radius}"
                )
        super().__post_init__()

    @property
    def stage(self) -> Stage:  # the pusher has no shoulder to mount
        return ARM_STAGE if self.effector == "arm" else dataclasses.replace(ARM_STAGE, base=0.0)

    def _mjcf(self) -> str:
        return _push_xml(
            self.solver_iterations,
            self.ls_iterations,
            self.gear,
            self.contact,
            self.effector,
            self.pusher_speed,
        )

    def _goal(self, key: jax.Array, puck: jax.Array) -> jax.Array:
        """[2] the goal: in the annulus, independent of the puck (``goal_offset_max`` 0), or
        ``goal_offset_min`` .. ``goal_offset_max`` from it (uniform in distance and direction)
        and in the annulus: the first of 16 such draws that lands there (else the last, moved
        radially onto the annulus)."""
        if self.goal_offset_max == 0:
            return sample_in_annulus(key, self.radius_min, self.radius_max)
        distance_key, angle_key = jax.random.split(key)
        draws = 16
        distance = jax.random.uniform(
            distance_key, (draws,), minval=self.goal_offset_min, maxval=self.goal_offset_max
        )
        angle = jax.random.uniform(angle_key, (draws,), minval=-jnp.pi, maxval=jnp.pi)
        goals = puck + distance[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
        radius = jnp.linalg.norm(goals, axis=-1)
        inside = (radius >= self.radius_min) & (radius <= self.radius_max)
        scale = jnp.clip(radius[-1], self.radius_min, self.radius_max)
        last = goals[-1] * scale / jnp.maximum(radius[-1], 1e-6)
        return jnp.where(jnp.any(inside), goals[jnp.argmax(inside)], last)

    @functools.cached_property
    def _ids(self) -> tuple[int, int]:
        return self.object_id("site", "fingertip"), self.object_id("body", "puck")

    def _observe(self, data) -> tuple[jax.Array, dict[str, jax.Array]]:
        site, puck = self._ids
        fingertip = data.site_xpos[site, :2]
        puck_pos = data.xpos[puck, :2]
        goal = data.mocap_pos[0, :2]
        if self.effector == "pusher":
            effector = jnp.concatenate([data.qpos[:2], data.qvel[:2]])
        else:
            effector = arm_observation(data)
        obs = jnp.concatenate(
            [
                effector,
                puck_pos,
                data.qvel[2:4],
                goal,
                fingertip - puck_pos,
                puck_pos - goal,
            ]
        )
        # where the fingertip touches the puck's far side from the goal (the push's start)
        away = puck_pos - goal
        behind = puck_pos + away / jnp.maximum(jnp.linalg.norm(away), 1e-6) * CONTACT_RADIUS
        signals = {
            "object_goal_distance": distance_between(puck_pos, goal),
            "hand_object_distance": distance_between(fingertip, puck_pos),
            "object_x": puck_pos[0],
            "object_y": puck_pos[1],
            "goal_x": goal[0],
            "goal_y": goal[1],
            "fingertip_x": fingertip[0],
            "fingertip_y": fingertip[1],
            "pre_push_distance": around_disc(fingertip, behind, puck_pos, CONTACT_RADIUS),
        }
        return obs, signals

    def _extra_terms(self, signals: dict, action: jax.Array) -> dict[str, jax.Array]:
        return {
            "hand_object_distance": signals["hand_object_distance"],
            "pre_push_distance": signals["pre_push_distance"],
        }

    def reset_with_model(self, model, key: jax.Array) -> EnvState:
        """``reset`` on ``model`` (an ``mjx.Model`` of this MJCF, e.g. domain-randomised)."""
        key, puck_key, goal_key, angle_key = jax.random.split(key, 4)
        puck = sample_in_annulus(puck_key, self.radius_min, self.radius_max)
        goal = self._goal(goal_key, puck)
        if self.effector == "pusher":
            start = sample_in_annulus(angle_key, 0.0, self.pusher_start_radius)
            return self._first_state(model, key, jnp.concatenate([start, puck]), goal)
        noise = self.reset_angle_noise
        angles = jax.random.uniform(angle_key, (2,), minval=-noise, maxval=noise)
        away = jnp.arctan2(puck[1], puck[0]) + jnp.pi
        qpos = jnp.concatenate([angles.at[0].add(away), puck])
        return self._first_state(model, key, qpos, goal)
