"""MJX planar pushing: the 2-link arm of ``reach.py`` pushes a puck to a random goal.

The puck is a sphere on two slide joints (x, y), so it moves in the plane without a floor
contact; viscous joint damping stands in for sliding friction. The only collisions are the two
arm links against the puck (contype/conaffinity), frictionless (condim 1): at most 2 contacts
and 2 constraint rows per step, which keeps the XLA program small (measured in docs/envs.md).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.envs.mjx_base import load_model
from rlx.envs.reach import ARM_ACTUATORS, ARM_XML, ArmTask, arm_observation, sample_in_annulus
from rlx.rewards.terms import distance as distance_between
from rlx.types import EnvState

PUCK_RADIUS = 0.02


def _push_xml(solver_iterations: int, ls_iterations: int) -> str:
    return f"""
<mujoco model="rlx_push">
  <option timestep="0.01" solver="Newton" iterations="{solver_iterations}"
          ls_iterations="{ls_iterations}"/>
  <worldbody>
    {ARM_XML.format(arm_contype=1)}
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
  {ARM_ACTUATORS}
</mujoco>
"""


@dataclasses.dataclass(frozen=True)
class Push(ArmTask):
    """Planar 2-link arm (2 motors, actions in [-1, 1]) pushing a puck to a goal; never terminates.

    Each reset draws the puck and the goal independently and uniformly (by area) in the annulus
    ``radius_min`` .. ``radius_max`` around the shoulder (the arm reaches 0.2 m; the puck's
    radius is 0.02 m), and points the arm away from the puck (shoulder angle opposite the puck,
    both joints perturbed by up to +-``reset_angle_noise``), so the two never start overlapping.
    Observation [16]: cos and sin of the joint angles, joint velocities, puck x, y, puck
    velocity x, y, goal x, y, fingertip minus puck x, y, puck minus goal x, y.

    Terms (unweighted, at the state after the step): ``object_goal_distance`` (puck centre to
    goal, m), ``hand_object_distance`` (fingertip to puck centre, m), ``ctrl_cost`` (sum of
    squared actions), ``success`` (1 when ``object_goal_distance < success_threshold``),
    ``progress`` (decrease of the object-goal distance during this step).
    Primary (``primary_objective``): ``'negative_distance'`` (default), -object_goal_distance
    every step; ``'final_success'``, the success indicator on the episode's last step and 0
    before it. ``success`` is a term either way.
    Signals: ``object_goal_distance``, ``hand_object_distance``, ``object_x``, ``object_y``,
    ``goal_x``, ``goal_y``, ``fingertip_x``, ``fingertip_y``.
    """

    episode_length: int = 100
    frames_per_step: int = 2
    success_threshold: float = 0.03
    radius_min: float = 0.08
    radius_max: float = 0.16
    reset_angle_noise: float = 0.5
    primary_objective: str = "negative_distance"
    solver_iterations: int = 1
    ls_iterations: int = 4
    impl: str = "jax"  # MJX's implementation: jax, or warp (MuJoCo Warp, a CUDA GPU)
    name: ClassVar[str] = "push"

    term_names = (
        "object_goal_distance",
        "hand_object_distance",
        "ctrl_cost",
        "success",
        "progress",
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
    )

    distance_signal: ClassVar[str] = "object_goal_distance"

    def __post_init__(self):
        if not 0 <= self.radius_min <= self.radius_max:
            raise ValueError("need 0 <= radius_min <= radius_max")
        super().__post_init__()

    def _models(self):
        return load_model(_push_xml(self.solver_iterations, self.ls_iterations), self.impl)

    @functools.cached_property
    def _ids(self) -> tuple[int, int]:
        return self.object_id("site", "fingertip"), self.object_id("body", "puck")

    def _observe(self, data) -> tuple[jax.Array, dict[str, jax.Array]]:
        site, puck = self._ids
        fingertip = data.site_xpos[site, :2]
        puck_pos = data.xpos[puck, :2]
        goal = data.mocap_pos[0, :2]
        obs = jnp.concatenate(
            [
                arm_observation(data),
                puck_pos,
                data.qvel[2:4],
                goal,
                fingertip - puck_pos,
                puck_pos - goal,
            ]
        )
        signals = {
            "object_goal_distance": distance_between(puck_pos, goal),
            "hand_object_distance": distance_between(fingertip, puck_pos),
            "object_x": puck_pos[0],
            "object_y": puck_pos[1],
            "goal_x": goal[0],
            "goal_y": goal[1],
            "fingertip_x": fingertip[0],
            "fingertip_y": fingertip[1],
        }
        return obs, signals

    def _extra_terms(self, signals: dict, action: jax.Array) -> dict[str, jax.Array]:
        return {"hand_object_distance": signals["hand_object_distance"]}

    def reset_with_model(self, model, key: jax.Array) -> EnvState:
        """``reset`` on ``model`` (an ``mjx.Model`` of this MJCF, e.g. domain-randomised)."""
        key, puck_key, goal_key, angle_key = jax.random.split(key, 4)
        puck = sample_in_annulus(puck_key, self.radius_min, self.radius_max)
        goal = sample_in_annulus(goal_key, self.radius_min, self.radius_max)
        noise = self.reset_angle_noise
        angles = jax.random.uniform(angle_key, (2,), minval=-noise, maxval=noise)
        away = jnp.arctan2(puck[1], puck[0]) + jnp.pi
        qpos = jnp.concatenate([angles.at[0].add(away), puck])
        return self._first_state(model, key, qpos, goal)
