"""The skeleton the MJX envs share (``humanoid`` and its tasks, ``reach``, ``push``).

Model loading (a ``mujoco.MjModel`` and its ``mjx.Model``, built once and cached), the
properties every MJX env offers (``mj_model``, ``mjx_model``, ``action_space``, ``dt``), and the
physics plumbing: actions in [-1, 1] scaled to the actuator ranges, ``frames_per_step`` MJX steps
with the control held, and a forwarded first state. ``MjxEnv`` routes ``reset``/``step`` to
``reset_with_model``/``step_with_model``, which take the ``mjx.Model`` as an argument so that
domain randomisation (``randomize.py``) can pass a modified one.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import Box, EnvState
from rlx.envs.scene import CAMERA, Stage, data_fields, staged_model

INSTALL = "pip install -c constraints.txt '.[mjx]'"


class MujocoUnavailableError(ImportError):
    pass


def import_mujoco(needs: str, *also: str):
    """The ``mujoco`` module, once ``mujoco.mjx`` and the modules ``also`` import; else a
    ``MujocoUnavailableError`` that starts with ``needs`` (who needs them)."""
    try:
        import mujoco
        from mujoco import mjx  # noqa: F401  (fails here, outside any trace, when missing)

        for module in also:
            importlib.import_module(module)
    except ImportError as error:
        raise MujocoUnavailableError(f"{needs}: {INSTALL}") from error
    return mujoco


# ``env.params.impl``: the physics. ``jax`` (MJX) runs anywhere; ``warp`` (MuJoCo Warp) needs a
# CUDA GPU and the mujoco-warp package; ``c`` steps MuJoCo's C engine on the CPU's threads
# (``rlx.envs.mujoco_c``: no physics gradients, which no learner or meta method uses).
IMPLS = ("jax", "warp", "c")


class ImplUnavailableError(ValueError):
    """An MJX implementation this machine cannot run (the message says what it needs)."""


def check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ImplUnavailableError(f"unknown MJX impl {impl!r} (one of {', '.join(IMPLS)})")
    if impl == "warp":
        import importlib.util

        backend = jax.default_backend()
        installed = importlib.util.find_spec("mujoco_warp") is not None
        if backend != "gpu" or not installed:
            raise ImplUnavailableError(
                "impl 'warp' runs MuJoCo Warp, which needs a CUDA GPU and mujoco-warp (pip "
                f"install mujoco-warp); here JAX's backend is {backend} and mujoco-warp is "
                f"{'installed' if installed else 'not installed'} (impl: jax runs anywhere)"
            )


def put_model(model, impl: str = "jax"):
    """(model, the model the env steps) of a ``mujoco.MjModel`` for ``impl``: an ``mjx.Model``
    with concrete arrays even when first asked for inside a trace, or for ``c`` a
    ``rlx.envs.mujoco_c.CModel`` (callers cache the result)."""
    if impl == "c":
        from rlx.envs.mujoco_c import CModel

        return model, CModel(model)
    from mujoco import mjx

    with jax.ensure_compile_time_eval():
        return model, mjx.put_model(model, impl=impl)


@functools.cache
def load_model(xml: str, impl: str = "jax"):
    """(mujoco.MjModel, mjx.Model) of an MJCF string; cached, so each env builds it once."""
    mujoco = import_mujoco("the manipulation envs need mujoco and mujoco-mjx")
    return put_model(mujoco.MjModel.from_xml_string(xml), impl)


def scale_action(model, action: jax.Array) -> jax.Array:
    """Maps actions in [-1, 1] onto the model's actuator control ranges."""
    ranges = jnp.asarray(model.actuator_ctrlrange, jnp.float32)
    low, high = ranges[:, 0], ranges[:, 1]
    return low + (action + 1.0) * 0.5 * (high - low)


def run_frames(model, data, ctrl: jax.Array, frames: int):
    """``frames`` MJX steps with ``ctrl`` held (one ``lax.scan``)."""
    from mujoco import mjx

    def frame(data, _):
        return mjx.step(model, data.replace(ctrl=ctrl)), None

    data, _ = jax.lax.scan(frame, data, None, length=frames)
    return data


def forward_at(model, *, qpos: jax.Array, qvel: jax.Array | None = None, mocap_xy=None):
    """A new ``mjx.Data`` at ``qpos`` (and ``qvel``; mocap body 0 moved to ``mocap_xy`` in the
    plane, its height kept), forwarded so positions and sensors describe it."""
    from mujoco import mjx

    data = mjx.make_data(model)
    fields = {"qpos": qpos}
    if qvel is not None:
        fields["qvel"] = qvel
    if mocap_xy is not None:
        fields["mocap_pos"] = data.mocap_pos.at[0, :2].set(mocap_xy)
    return mjx.forward(model, data.replace(**fields))


@dataclasses.dataclass(frozen=True)
class MjxPhysics:
    """The physics of an MJX env on MJX (``impl`` ``jax`` or ``warp``)."""

    def forward_at(self, model, *, qpos, qvel=None, mocap_xy=None):
        return forward_at(model, qpos=qpos, qvel=qvel, mocap_xy=mocap_xy)

    def step(self, model, data, ctrl: jax.Array, frames: int, positions_after: bool = False):
        """``frames`` steps with ``ctrl`` held; ``positions_after``: then kinematics, so that
        positions describe the new ``qpos`` (``mjx.step`` leaves them at the one it started
        from)."""
        data = run_frames(model, data, ctrl, frames)
        if positions_after:
            from mujoco import mjx

            data = mjx.kinematics(model, data)
        return data


@dataclasses.dataclass(frozen=True)
class CPhysics:
    """The physics of an MJX env on MuJoCo's C engine (``impl: c``, ``rlx.envs.mujoco_c``):
    ``fields`` are the ``mjx.Data`` fields the env reads beyond qpos, qvel and the mocap
    poses."""

    fields: tuple[str, ...]

    def forward_at(self, model, *, qpos, qvel=None, mocap_xy=None):
        from rlx.envs import mujoco_c

        return mujoco_c.forward_at(model, self.fields, qpos=qpos, qvel=qvel, mocap_xy=mocap_xy)

    def step(self, model, data, ctrl: jax.Array, frames: int, positions_after: bool = False):
        from rlx.envs import mujoco_c

        stage = "pos" if positions_after else "none"
        return mujoco_c.run_frames(model, data, ctrl, frames, self.fields, stage)


class MjxEnv:
    """What the MJX envs share; a base of frozen dataclasses that have a ``frames_per_step``
    field and define ``_mjcf`` (the MJCF of their configuration) or ``_models`` (a cached
    (MjModel, mjx.Model) loader), ``reset_with_model`` and ``step_with_model``.

    They render (``rlx.envs.scene.Renderable``): their MJCF with their ``stage`` added, seen
    from the stage's camera, posed by the state's joint positions and mocap poses.
    """

    stage: ClassVar[Stage] = Stage()
    render_camera: ClassVar[str | None] = CAMERA
    # The mjx.Data fields the env reads beyond qpos, qvel and the mocap poses (impl c copies
    # these out of the C engine at every step)
    physics_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        check_impl(getattr(self, "impl", "jax"))
        self._models()  # load the MJCF outside any trace

    def _mjcf(self) -> str:
        """The MJCF (a string) of this env's configuration."""
        raise NotImplementedError

    def _models(self):
        """(mujoco.MjModel, mjx.Model) of this env's configuration; cached by the loader."""
        return load_model(self._mjcf(), getattr(self, "impl", "jax"))

    @property
    def physics(self) -> MjxPhysics | CPhysics:
        """How this env steps: on MJX, or on MuJoCo's C engine (``impl: c``)."""
        if getattr(self, "impl", "jax") == "c":
            return CPhysics(self.physics_fields)
        return MjxPhysics()

    def render_model(self):
        """The ``mujoco.MjModel`` a renderer draws: the MJCF with ``stage`` added (cached)."""
        return staged_model(self._mjcf(), self.stage)

    def render_state(self, physics) -> dict:
        """The MjData fields of ``physics`` (an ``mjx.Data``) that place what a frame shows."""
        return data_fields(physics)

    @property
    def mj_model(self):
        """The ``mujoco.MjModel`` the mjx model was built from (host side)."""
        return self._models()[0]

    @property
    def mjx_model(self):
        """The ``mjx.Model`` that ``reset``/``step`` use (``*_with_model`` take any other)."""
        return self._models()[1]

    @property
    def action_space(self) -> Box:
        return Box(size=int(self.mj_model.nu), low=-1.0, high=1.0)

    @property
    def dt(self) -> float:
        return float(self.mj_model.opt.timestep) * self.frames_per_step

    def object_id(self, kind: str, name: str) -> int:
        """The id of the ``kind`` (``"site"``, ``"body"``, ...) named ``name`` in the model."""
        import mujoco

        kind_id = getattr(mujoco.mjtObj, f"mjOBJ_{kind.upper()}")
        return mujoco.mj_name2id(self.mj_model, kind_id, name)

    @property
    def pushable(self) -> bool:
        """Whether the model's root is a free joint, whose planar velocity ``push`` kicks."""
        import mujoco

        model = self.mj_model
        return model.njnt > 0 and int(model.jnt_type[0]) == int(mujoco.mjtJoint.mjJNT_FREE)

    def push(self, physics, kick: jax.Array):
        """``physics`` (an ``mjx.Data``, or the C engine's) with ``kick`` [2] added to the free
        root joint's x and y velocity (``env.sim2real`` pushes)."""
        if not self.pushable:
            from rlx.envs.sim2real import NotPushableError

            raise NotPushableError(f"env {self.name!r}: its root is not a free joint")
        return physics.replace(qvel=physics.qvel.at[:2].add(kick))

    def reset(self, key: jax.Array) -> EnvState:
        return self.reset_with_model(self.mjx_model, key)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        return self.step_with_model(self.mjx_model, state, action)
