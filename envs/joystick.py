"""Velocity-command ("joystick") locomotion on Brax's ant, a quadruped whose MJCF ships in the
brax package: the policy is told a planar velocity and a turning rate and must follow them.

As the peers' joystick tasks (MuJoCo Playground's Go1/Spot joystick, legged_gym, Isaac Lab):
commands (forward ``vx``, lateral ``vy``, yaw rate) are drawn per episode, resampled every
``command_resample_steps`` steps (and zero with ``zero_command_probability``), observed by the
policy in the body frame, and tracked by reward terms in their style, each unweighted:

- ``tracking_lin_vel``: exp(-|v_xy - cmd_xy|^2 / tracking_sigma) (body-frame velocity);
- ``tracking_ang_vel``: exp(-(w_z - cmd_yaw)^2 / tracking_sigma);
- ``lin_vel_z`` (v_z^2), ``ang_vel_xy`` (|w_xy|^2), ``orientation`` (|gravity_xy|^2 in the body
  frame), ``base_height`` ((z - base_height_target)^2): costs of a base that bounces or tilts;
- ``torques`` (sum of squared efforts: each servo's force over ``max_force``, or with
  ``actuation: torque`` each action, a motor's torque over its gear), ``action_rate``
  (|a - a_prev|^2), ``joint_limits`` (how far joints pass 90% of their range);
- ``feet_air_time``: sum over feet touching down of (air time - 0.1 s), while a command asks to
  move (legged_gym's: it rewards steps rather than shuffling);
- ``velocity_error``: |v_x - cmd_x|, the forward tracking error in m/s (a diagnostic: weight it
  0; its episode sum over the episode length is the gate's figure).

Primary: ``tracking_lin_vel``. Terminates when the torso falls below ``min_height`` or flips.

The policy observes (``observation_groups``, in order): ``lin_vel`` (3, the body-frame linear
velocity, as a robot's velocity estimator or Playground's Go1 velocimeter gives it, noisy under
``env.sim2real.obs_noise``), ``gravity`` (3, the gravity direction in the body frame), ``gyro``
(3, body angular velocity), ``joint_pos`` (8, from the default pose), ``joint_vel`` (8),
``last_action`` (8), ``command`` (3): 36 entries. A policy that cannot see its velocity must
guess it from one frame of joint motion, and tracks poorly. With ``privileged`` the critic
alone also reads the true (noise-free) ``lin_vel`` (3), ``height``, the four feet's contacts
and air times (12 more): ``actor_observation_size`` = 36.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlx.core.types import EnvState
from rlx.envs.base import make_state, transition_state
from rlx.envs.mjx_base import MjxEnv, import_mujoco, put_model, scale_action
from rlx.envs.scene import Stage, data_fields, staged_model

# Brax's ant standing pose (its MJCF's ``init_qpos``): torso 0.55 m up, knees bent.
DEFAULT_QPOS = (0.0, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0, 1.0)
FEET = ("left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom")
FOOT_RADIUS = 0.08
GROUPS = (("lin_vel", 3), ("gravity", 3), ("gyro", 3), ("joint_pos", 8), ("joint_vel", 8),
          ("last_action", 8), ("command", 3))  # fmt: skip
PRIVILEGED = 12  # lin_vel 3, height 1, contacts 4, air times 4


def _mjcf_path() -> str:
    import_mujoco("the joystick env needs mujoco, mujoco-mjx and brax (for its MJCF)", "etils")
    from etils import epath

    return str(epath.resource_path("brax") / "envs/assets/ant.xml")


def position_servos(model, kp: float, kd: float, max_force: float):
    """``model`` (a ``mujoco.MjModel``, edited in place and returned) with its motors made PD
    position servos on their joints, as the peers' joystick robots are driven: a control is a
    joint target within the joint's range, the force clip(kp (target - q) - kd q', +-max_force),
    computed by MuJoCo at every physics step (numpy only)."""
    joints = model.actuator_trnid[:, 0]
    model.actuator_gaintype[:] = 0  # mjGAIN_FIXED: gain = gainprm[0]
    model.actuator_biastype[:] = 1  # mjBIAS_AFFINE: bias = biasprm[0] + [1] q + [2] q'
    model.actuator_gainprm[:] = 0.0
    model.actuator_gainprm[:, 0] = kp
    model.actuator_biasprm[:] = 0.0
    model.actuator_biasprm[:, 1] = -kp
    model.actuator_biasprm[:, 2] = -kd
    model.actuator_gear[:] = 0.0
    model.actuator_gear[:, 0] = 1.0
    model.actuator_ctrlrange[:] = model.jnt_range[joints]
    model.actuator_forcerange[:] = (-max_force, max_force)
    model.actuator_forcelimited[:] = True
    return model


@functools.cache
def _model(impl: str, servo: tuple[float, float, float] | None):
    import mujoco

    model = mujoco.MjModel.from_xml_path(_mjcf_path())
    model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    model.opt.iterations = 4
    model.opt.ls_iterations = 8
    if servo is not None:
        position_servos(model, *servo)
    return put_model(model, impl)


def rotation(quat: jax.Array) -> jax.Array:
    """The rotation matrix [3, 3] (body to world) of a unit quaternion (w, x, y, z)."""
    w, x, y, z = quat[0], quat[1], quat[2], quat[3]
    return jnp.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


@struct.dataclass
class JoystickPhysics:
    """The simulator's data and the task's state: command [3] (vx, vy, yaw rate),
    last_action [8], air_time [4] (s each foot has been off the ground)."""

    data: Any
    command: jax.Array
    last_action: jax.Array
    air_time: jax.Array


@dataclasses.dataclass(frozen=True)
class AntJoystick(MjxEnv):
    """Brax's ant following velocity commands (8 motors, actions in [-1, 1])."""

    episode_length: int = 500
    frames_per_step: int = 5  # 0.05 s per step (20 Hz), Brax's ant
    command_vx: float = 1.0  # commands are drawn in [-command_vx, command_vx], ...
    command_vy: float = 0.5
    command_yaw: float = 1.0
    zero_command_probability: float = 0.1
    command_resample_steps: int = 200
    tracking_sigma: float = 0.25
    base_height_target: float = 0.55
    min_height: float = 0.25
    reset_noise_scale: float = 0.1
    privileged: bool = True
    # position: PD servos (the peers' joystick robots), an action sets each joint's target
    # across its range; torque: Brax's motors (gear 150), an action is a torque
    actuation: str = "position"
    kp: float = 40.0
    kd: float = 4.0
    max_force: float = 30.0
    impl: str = "jax"
    name: ClassVar[str] = "ant_joystick"
    physics_fields: ClassVar[tuple[str, ...]] = ("geom_xpos",)
    primary_term: ClassVar[str | None] = "tracking_lin_vel"
    observation_groups: ClassVar[tuple[tuple[str, int], ...]] = GROUPS
    # the video's strip: the commanded forward velocity against the body's, on one scale
    render_series: ClassVar[tuple[tuple[str, ...], ...]] = (("command_x", "forward_velocity"),)

    term_names = (
        "tracking_lin_vel", "tracking_ang_vel", "lin_vel_z", "ang_vel_xy", "orientation",
        "base_height", "torques", "action_rate", "joint_limits", "feet_air_time",
        "velocity_error",
    )  # fmt: skip
    signal_names = ("forward_velocity", "command_x", "torso_height", "uprightness")

    stage: ClassVar[Stage] = Stage(
        lookat=(0.0, 0.0, 0.0),
        distance=4.0,
        elevation=25.0,
        azimuth=90.0,
        track="torso",
        floor="floor",
        floor_size=40.0,
        square=0.5,
    )

    def __post_init__(self):
        if self.actuation not in ("position", "torque"):
            raise ValueError(f"actuation must be 'position' or 'torque', got {self.actuation!r}")
        if not (self.kp > 0 and self.kd >= 0 and self.max_force > 0):
            raise ValueError(
                f"the servos need kp > 0, kd >= 0 and max_force > 0, got kp={self.kp!r}, "
                f"kd={self.kd!r}, max_force={self.max_force!r}"
            )
        super().__post_init__()

    def _models(self):
        servo = (self.kp, self.kd, self.max_force) if self.actuation == "position" else None
        return _model(self.impl, servo)

    @property
    def actions_are_targets(self) -> bool:
        """Whether an action is a joint target (PD servos), not a force (``env.sim2real``'s
        motor strength refuses such actions)."""
        return self.actuation == "position"

    @functools.cached_property
    def _actuated(self) -> tuple[np.ndarray, np.ndarray]:
        """(qpos index [8], qvel index [8]) of each actuator's joint, in actuator order."""
        joints = self.mj_model.actuator_trnid[:, 0]
        return self.mj_model.jnt_qposadr[joints], self.mj_model.jnt_dofadr[joints]

    def _effort(self, model, data, ctrl: jax.Array, action: jax.Array) -> jax.Array:
        """[8] each motor's effort in [-1, 1]: a servo's PD force after the step over
        ``max_force``, from ``model``'s gains (randomised ones included), or the action
        (torque)."""
        if self.actuation == "torque":
            return action
        qpos, qvel = self._actuated
        gain, bias = model.actuator_gainprm, model.actuator_biasprm
        force = gain[:, 0] * ctrl + bias[:, 1] * data.qpos[qpos] + bias[:, 2] * data.qvel[qvel]
        return jnp.clip(force / self.max_force, -1.0, 1.0)

    def render_model(self):
        return staged_model(_mjcf_path(), self.stage, is_path=True)

    def render_state(self, physics: JoystickPhysics) -> dict:
        return data_fields(physics.data)

    @property
    def actor_observation_size(self) -> int | None:
        return sum(size for _, size in GROUPS) if self.privileged else None

    @functools.cached_property
    def _feet(self) -> tuple[int, ...]:
        return tuple(self.object_id("geom", name) for name in FEET)

    @functools.cached_property
    def _soft_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) [8]: the middle 90% of each hinge's range (host constants: a cached
        jax array made inside one trace must not be reused by another)."""
        ranges = np.asarray(self.mj_model.jnt_range[1:], np.float32)
        middle, half = ranges.mean(axis=1), (ranges[:, 1] - ranges[:, 0]) / 2
        return middle - 0.9 * half, middle + 0.9 * half

    def push(self, physics: JoystickPhysics, kick: jax.Array) -> JoystickPhysics:
        return physics.replace(data=super().push(physics.data, kick))

    def _draw_command(self, key: jax.Array) -> jax.Array:
        k_cmd, k_zero = jax.random.split(key)
        high = jnp.array([self.command_vx, self.command_vy, self.command_yaw], jnp.float32)
        command = jax.random.uniform(k_cmd, (3,), minval=-high, maxval=high)
        zero = jax.random.uniform(k_zero) < self.zero_command_probability
        return jnp.where(zero, 0.0, command)

    def _kinematics(self, data):
        """(body-frame linear velocity [3], body angular velocity [3], gravity in the body
        frame [3], up-axis z [])."""
        frame = rotation(data.qpos[3:7] / jnp.linalg.norm(data.qpos[3:7]))
        lin_vel = frame.T @ data.qvel[:3]  # a free joint's linear velocity is in the world frame
        gravity = frame.T @ jnp.array([0.0, 0.0, -1.0])
        return lin_vel, data.qvel[3:6], gravity, frame[2, 2]

    def _contacts(self, data) -> jax.Array:
        """[4] 1.0 where a foot touches the ground (its centre within 1 cm of a radius up)."""
        heights = data.geom_xpos[jnp.array(self._feet), 2]
        return (heights < FOOT_RADIUS + 0.01).astype(jnp.float32)

    def _observe(self, physics: JoystickPhysics) -> jax.Array:
        data = physics.data
        lin_vel, gyro, gravity, _ = self._kinematics(data)
        default = jnp.asarray(DEFAULT_QPOS[7:], jnp.float32)
        actor = [lin_vel, gravity, gyro, data.qpos[7:] - default, data.qvel[6:],
                 physics.last_action, physics.command]  # fmt: skip
        if not self.privileged:
            return jnp.concatenate(actor)
        critic = [lin_vel, data.qpos[2:3], self._contacts(data), physics.air_time]
        return jnp.concatenate(actor + critic)

    def _signals(self, physics: JoystickPhysics) -> dict[str, jax.Array]:
        lin_vel, _, _, up = self._kinematics(physics.data)
        return {
            "forward_velocity": lin_vel[0],
            "command_x": physics.command[0],
            "torso_height": physics.data.qpos[2],
            "uprightness": up,
        }

    def reset_with_model(self, model, key: jax.Array) -> EnvState:
        key, k_qpos, k_qvel, k_command = jax.random.split(key, 4)
        noise = self.reset_noise_scale
        qpos = jnp.asarray(DEFAULT_QPOS, jnp.float32)
        qpos = qpos.at[7:].add(jax.random.uniform(k_qpos, (8,), minval=-noise, maxval=noise))
        qvel = jax.random.uniform(k_qvel, (model.nv,), minval=-noise, maxval=noise)
        data = self.physics.forward_at(model, qpos=qpos, qvel=qvel)
        physics = JoystickPhysics(
            data=data,
            command=self._draw_command(k_command),
            last_action=jnp.zeros(8, jnp.float32),
            air_time=jnp.zeros(4, jnp.float32),
        )
        return make_state(
            physics=physics,
            obs=self._observe(physics),
            signals=self._signals(physics),
            term_names=self.term_names,
            key=key,
        )

    def step_with_model(self, model, state: EnvState, action: jax.Array) -> EnvState:
        before = state.physics
        ctrl = scale_action(model, jnp.clip(action, -1.0, 1.0))
        data = self.physics.step(model, before.data, ctrl, self.frames_per_step,
                                 positions_after=True)  # fmt: skip
        command = before.command
        lin_vel, gyro, gravity, up = self._kinematics(data)
        contacts = self._contacts(data)
        touchdown = contacts * (before.air_time > 0)
        moving = (jnp.linalg.norm(command[:2]) > 0.1).astype(jnp.float32)
        low, high = self._soft_limits
        joints = data.qpos[7:]
        terms = {
            "tracking_lin_vel": jnp.exp(
                -jnp.sum((command[:2] - lin_vel[:2]) ** 2) / self.tracking_sigma
            ),
            "tracking_ang_vel": jnp.exp(-((command[2] - gyro[2]) ** 2) / self.tracking_sigma),
            "lin_vel_z": lin_vel[2] ** 2,
            "ang_vel_xy": jnp.sum(gyro[:2] ** 2),
            "orientation": jnp.sum(gravity[:2] ** 2),
            "base_height": (data.qpos[2] - self.base_height_target) ** 2,
            "torques": jnp.sum(self._effort(model, data, ctrl, action) ** 2),
            "action_rate": jnp.sum((action - before.last_action) ** 2),
            "joint_limits": jnp.sum(jnp.maximum(joints - high, 0) + jnp.maximum(low - joints, 0)),
            "feet_air_time": jnp.sum((before.air_time + self.dt - 0.1) * touchdown) * moving,
            "velocity_error": jnp.abs(lin_vel[0] - command[0]),
        }
        # A new command every command_resample_steps steps of the episode, from the env's key.
        key, k_command = jax.random.split(state.key)
        resample = (state.step_count + 1) % self.command_resample_steps == 0
        physics = JoystickPhysics(
            data=data,
            command=jnp.where(resample, self._draw_command(k_command), command),
            last_action=action.astype(jnp.float32),
            air_time=(before.air_time + self.dt) * (1.0 - contacts),
        )
        fallen = (data.qpos[2] < self.min_height) | (up < 0.0)
        out = transition_state(
            state,
            physics=physics,
            obs=self._observe(physics),
            signals=self._signals(physics),
            terms=terms,
            primary=terms["tracking_lin_vel"],
            terminated=fallen,
        )
        return out.replace(key=key)
