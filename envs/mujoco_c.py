"""MuJoCo's C engine behind the MJX env API (``env.params.impl: c``), for CPUs.

The MJX envs (the humanoid and its tasks, reach, push, lift) step ``mjx.Data`` with
``mjx.step``. With ``impl: c`` the same envs step MuJoCo's own C engine instead:
``mujoco.batch.Batch`` runs many simulations of one model on a thread pool, called from inside
the compiled, scanned rollout through ``jax.pure_callback``. The rest of the program (policy,
reward layer, GAE, PPO, the meta-learners, vmapped seeds and members) stays one jitted program,
and under ``vmap`` the callback is batched: one call steps every env of every seed and member.

The state is pure and lives in the JAX program: ``CData.state`` holds each simulation's
``mjSTATE_INTEGRATION`` row (time, qpos, qvel, act, warmstart, ctrl, applied forces, mocap
poses, ...) as the bits of its float64 values (``uint32[2 * nstate]``), so a step is a function
of its inputs, resets and vmapped seeds work as with MJX, checkpoints hold the exact state and a
resumed run is bit-identical. Beside it ``CData`` carries float32 copies of ``qpos``, ``qvel``,
the mocap poses and the derived fields the env reads (its ``physics_fields``), with the shapes
``mjx.Data`` gives them; as with ``mjx.step`` (and ``mj_step``) derived fields describe the
state before the last substep.

Domain randomisation works as with MJX: ``CModel.replace(body_mass=...)`` gives a model whose
replaced fields are traced arrays, which the callback writes per simulation
(``Batch.expand``) before stepping.

No gradient flows through the simulator: no learner or meta method of rlx needs one (the
meta-gradients differentiate the PPO update on a collected rollout, not the physics), so the
callback has no derivative rule and a program that differentiates through a step fails to
trace.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# MjData fields that are 3x3 matrices stored as 9 numbers (mjx.Data has them as 3x3)
_MATRICES = frozenset({"xmat", "ximat", "geom_xmat", "site_xmat", "cam_xmat", "light_xmat"})
# The fields every CData carries (the state's own, and what a renderer reads)
BASE_FIELDS = ("qpos", "qvel", "mocap_pos", "mocap_quat")
STAGES = ("none", "pos")  # derived fields at the new state: none, or up to positions


def threads() -> int:
    """The batch's threads: ``RLX_C_THREADS``, else the CPUs this process may use."""
    value = os.environ.get("RLX_C_THREADS")
    if value:
        return max(1, int(value))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class _Static:
    """A host object as a pytree's static part: equal only to itself (models are cached)."""

    def __init__(self, value: Any):
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Static) and other.value is self.value


@jax.tree_util.register_pytree_node_class
class CModel:
    """A ``mujoco.MjModel`` where ``mjx.Model`` stood: attributes read the host model's arrays,
    and ``replace(field=array)`` (domain randomisation) gives a model whose replaced fields are
    traced arrays, written per simulation before each step."""

    def __init__(self, mj_model, fields: dict[str, jax.Array] | None = None):
        self.__dict__["_mj"] = mj_model
        self.__dict__["fields"] = dict(fields or {})

    @property
    def mj(self):
        """The host ``mujoco.MjModel``."""
        return self.__dict__["_mj"]

    def __getattr__(self, name: str):
        fields = self.__dict__["fields"]
        if name in fields:
            return fields[name]
        value = getattr(self.__dict__["_mj"], name)
        # arrays as JAX arrays, as mjx.Model has them (float32 unless x64 is on)
        return jnp.asarray(value) if isinstance(value, np.ndarray) else value

    def replace(self, **fields) -> CModel:
        return CModel(self.mj, {**self.fields, **fields})

    def tree_flatten(self):
        names = tuple(sorted(self.fields))
        return tuple(self.fields[n] for n in names), (_Static(self.mj), names)

    @classmethod
    def tree_unflatten(cls, aux, children):
        static, names = aux
        return cls(static.value, dict(zip(names, children, strict=True)))


@jax.tree_util.register_pytree_node_class
class CData:
    """What ``mjx.Data`` was to an env, for the C engine: ``state`` (the exact float64 state
    rows as uint32 bits, ``[..., 2 * nstate]``) and float32 fields by name (``data.qpos``).

    ``replace(qpos=...)`` of a state field (qpos, qvel, mocap poses, ctrl, applied forces, ...)
    writes it into the state too, so the next step starts from it, as with ``mjx.Data``."""

    def __init__(self, state: jax.Array, fields: dict[str, jax.Array], mj_model=None):
        self.__dict__["state"] = state
        self.__dict__["fields"] = dict(fields)
        self.__dict__["_mj"] = mj_model

    def __getattr__(self, name: str):
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(
                f"CData has no field {name!r} (impl c copies out {sorted(self.fields)}: add it "
                "to the env's physics_fields)"
            ) from None

    def replace(self, **fields) -> CData:
        host = _host(self.__dict__["_mj"])
        written = {k: v for k, v in fields.items() if k in host.offsets}
        state = _write_state(host, self.state, written) if written else self.state
        return CData(state, {**self.fields, **fields}, self.__dict__["_mj"])

    def tree_flatten(self):
        names = tuple(sorted(self.fields))
        return (self.state, *(self.fields[n] for n in names)), (names, _Static(self._mj))

    @classmethod
    def tree_unflatten(cls, aux, children):
        names, static = aux
        state, *rest = children
        return cls(state, dict(zip(names, rest, strict=True)), static.value)


class _Host:
    """The host side of one model: batches by (simulations, expanded fields), and the calls."""

    def __init__(self, mj_model):
        import mujoco

        self.mujoco = mujoco
        self.model = mj_model
        self.nstate = mujoco.mj_stateSize(mj_model, mujoco.mjtState.mjSTATE_INTEGRATION)
        self.template = mujoco.MjData(mj_model)
        # qpos slices of the free and ball joints' quaternions (a reset normalises them, as
        # MJX's forward does)
        free, ball = int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL)
        self.quats = [
            int(adr) + (3 if int(kind) == free else 0)
            for kind, adr in zip(mj_model.jnt_type, mj_model.jnt_qposadr, strict=True)
            if int(kind) in (free, ball)
        ]
        # where each state field sits in a state row: (offset, size), in mjtState's order
        from mujoco.batch import _STATE_FIELDS

        self.offsets, offset = {}, 0
        for name, spec in _STATE_FIELDS.items():
            size = mujoco.mj_stateSize(mj_model, spec)
            self.offsets[name], offset = (offset, size), offset + size
        self.batches: dict = {}
        self.lock = threading.Lock()

    def shape(self, name: str) -> tuple[int, ...]:
        """The ``mjx.Data`` shape of MjData field ``name`` for one simulation."""
        shape = np.shape(getattr(self.template, name))
        return (*shape[:-1], 3, 3) if name in _MATRICES else shape

    def batch(self, n: int, expanded: tuple[str, ...], names: Sequence[str]):
        """The batch of ``n`` simulations (with ``expanded`` per-simulation model fields), its
        output fields ``names`` bound before its call (a field is copied out only once bound)."""
        key = (n, expanded)
        if key not in self.batches:
            from mujoco.batch import Batch

            self.batches[key] = Batch(self.model, n, threads())
        batch = self.batches[key]
        for name in names:
            batch.bind(name)
        return batch

    def _outputs(self, batch, names: Sequence[str], n: int) -> list[np.ndarray]:
        state = np.ascontiguousarray(batch.state).view(np.uint32).reshape(n, 2 * self.nstate)
        out = [state]
        for name in names:
            values = batch.bind(name)
            out.append(np.asarray(values, np.float32).reshape(n, *self.shape(name)))
        return out

    def _load_model_fields(self, batch, model_fields: dict[str, np.ndarray]) -> None:
        for name, values in model_fields.items():
            target = batch.expand(name)
            target[...] = np.asarray(values, target.dtype).reshape(target.shape)

    def step(self, state, ctrl, model_fields, *, frames, stage, names):
        """Every simulation ``frames`` substeps from ``state`` with ``ctrl`` held."""
        n = math.prod(state.shape[:-1])
        with self.lock:
            batch = self.batch(n, tuple(sorted(model_fields)), names)
            self._load_model_fields(batch, model_fields)
            rows = np.ascontiguousarray(state).reshape(n, 2 * self.nstate).view(np.float64)
            batch.state[...] = rows
            batch.bind("ctrl")[...] = np.asarray(ctrl, np.float64).reshape(n, -1)
            target = self.mujoco.mjtStage.mjSTAGE_POS if stage == "pos" else 0
            batch.step(nstep=frames, stage=int(target))
            return self._outputs(batch, names, n)

    def write_state(self, state, *values, names):
        """``state`` rows with the fields ``names`` set to ``values``."""
        n = math.prod(state.shape[:-1])
        rows = np.array(state, np.uint32).reshape(n, 2 * self.nstate).view(np.float64)
        for name, value in zip(names, values, strict=True):
            offset, size = self.offsets[name]
            rows[:, offset : offset + size] = np.asarray(value, np.float64).reshape(n, size)
        return [rows.view(np.uint32).reshape(n, 2 * self.nstate)]

    def forward_at(self, qpos, qvel, mocap_pos, model_fields, *, names):
        """Every simulation reset to the model's defaults, then placed and forwarded."""
        n = math.prod(qpos.shape[:-1])
        with self.lock:
            batch = self.batch(n, tuple(sorted(model_fields)), names)
            self._load_model_fields(batch, model_fields)
            batch.reset(stage=0)
            qpos = np.array(qpos, np.float64).reshape(n, -1)
            for start in self.quats:
                quat = qpos[:, start : start + 4]
                quat /= np.maximum(np.linalg.norm(quat, axis=-1, keepdims=True), 1e-12)
            batch.bind("qpos")[...] = qpos
            batch.bind("qvel")[...] = np.asarray(qvel, np.float64).reshape(n, -1)
            if self.model.nmocap:
                batch.bind("mocap_pos")[...] = np.asarray(mocap_pos, np.float64).reshape(
                    n, self.model.nmocap, 3
                )
            batch.forward()
            return self._outputs(batch, names, n)


_HOSTS: dict[int, _Host] = {}


def _host(mj_model) -> _Host:
    if id(mj_model) not in _HOSTS:
        _HOSTS[id(mj_model)] = _Host(mj_model)
    return _HOSTS[id(mj_model)]


def _names(model: CModel, fields: Sequence[str]) -> tuple[str, ...]:
    base = BASE_FIELDS if model.mj.nmocap else BASE_FIELDS[:2]
    return tuple(dict.fromkeys((*base, *fields)))


def _write_state(host: _Host, state: jax.Array, fields: dict) -> jax.Array:
    """``state`` (bits) with ``fields`` (float32, their mjx.Data shapes) written into it."""
    names = tuple(sorted(fields))
    values = [jnp.asarray(fields[n], jnp.float32) for n in names]
    shape = jax.ShapeDtypeStruct(state.shape, jnp.uint32)

    def callback(state, *values):
        lead = state.shape[:-1]
        (out,) = host.write_state(state, *values, names=names)
        return out.reshape(*lead, -1)

    return jax.pure_callback(callback, shape, state, *values, vmap_method="broadcast_all")


def _call(host: _Host, method, names, *args):
    """``method`` through ``jax.pure_callback``, batched over any vmapped dimensions (the
    callback sees them all in front of the first argument's own dimensions)."""
    shapes = [jax.ShapeDtypeStruct((2 * host.nstate,), jnp.uint32)] + [
        jax.ShapeDtypeStruct(host.shape(n), jnp.float32) for n in names
    ]
    core = np.ndim(args[0])

    def callback(*arrays):
        lead = arrays[0].shape[: arrays[0].ndim - core]
        return tuple(o.reshape(*lead, *o.shape[1:]) for o in method(*arrays))

    result = jax.pure_callback(callback, tuple(shapes), *args, vmap_method="broadcast_all")
    state, *fields = result
    return CData(state, dict(zip(names, fields, strict=True)), host.model)


def _model_fields(model: CModel) -> tuple[list[str], list[jax.Array]]:
    names = sorted(model.fields)
    return names, [jnp.asarray(model.fields[n], jnp.float32) for n in names]


def forward_at(model: CModel, fields: Sequence[str], *, qpos, qvel=None, mocap_xy=None) -> CData:
    """A new ``CData`` at ``qpos`` (and ``qvel``; mocap body 0 moved to ``mocap_xy`` in the
    plane, its height kept), forwarded so positions and sensors describe it."""
    mj = model.mj
    host = _host(mj)
    names = _names(model, fields)
    qvel = jnp.zeros(mj.nv, jnp.float32) if qvel is None else qvel
    mocap = jnp.asarray(mj.body_pos[mj.body_mocapid >= 0][np.argsort(
        mj.body_mocapid[mj.body_mocapid >= 0])], jnp.float32).reshape(mj.nmocap, 3)  # fmt: skip
    if mocap_xy is not None:
        mocap = mocap.at[0, :2].set(mocap_xy)
    field_names, field_values = _model_fields(model)

    def method(qpos, qvel, mocap, *values):
        return host.forward_at(
            qpos, qvel, mocap, dict(zip(field_names, values, strict=True)), names=names
        )

    qpos = jnp.asarray(qpos, jnp.float32)
    return _call(host, method, names, qpos, jnp.asarray(qvel, jnp.float32), mocap,
                 *field_values)  # fmt: skip


def run_frames(
    model: CModel,
    data: CData,
    ctrl: jax.Array,
    frames: int,
    fields: Sequence[str],
    stage: str = "none",
) -> CData:
    """``frames`` substeps with ``ctrl`` held; ``stage`` ``"pos"`` also computes the
    position-dependent fields at the new state (as ``mjx.kinematics`` after ``mjx.step``)."""
    host = _host(model.mj)
    names = _names(model, fields)
    field_names, field_values = _model_fields(model)

    def method(state, ctrl, *values):
        return host.step(
            state,
            ctrl,
            dict(zip(field_names, values, strict=True)),
            frames=frames,
            stage=stage,
            names=names,
        )

    return _call(host, method, names, data.state, jnp.asarray(ctrl, jnp.float32),
                 *field_values)  # fmt: skip
