"""Data parallelism over the environment batch axis with ``jax.sharding`` (no pmap).

The env states and per-env episode sums (leading axis ``[B]``) are split over a 1-D mesh of
every process's devices (``jax.devices()``: the local ones in a single process); parameters,
optimizer state and the rest are replicated. XLA's partitioner (GSPMD) then runs the rollout
where the envs live and inserts the collectives the update needs, so the same program runs on
one CPU, a GPU, a TPU slice or several hosts (``rlx.core.runtime.distributed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``batch`` over ``devices`` (default: every device of every process)."""
    devices = list(devices) if devices is not None else jax.devices()
    return Mesh(np.asarray(devices), (BATCH_AXIS,))


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """Shardings for a ``ppo.TrainState``: env-batched fields (a recurrent policy's memory
    too) split, the rest replicated."""
    split = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    whole = NamedSharding(mesh, PartitionSpec())
    shardings = jax.tree.map(lambda _: whole, state)
    return shardings.replace(
        env_state=jax.tree.map(lambda _: split, state.env_state),
        episode_sums=jax.tree.map(lambda _: split, state.episode_sums),
    ).with_policy_carry(jax.tree.map(lambda _: split, state.policy_carry))


def traced_devices() -> int:
    """How many devices the program being traced splits its env batch over: the size of the
    mesh set with ``jax.set_mesh`` (``rlx.run.driver`` sets it while tracing a single
    learner's chunk), else 1: also inside a ``shard_map``, whose body runs on one device's
    part."""
    mesh = jax.sharding.get_abstract_mesh()
    inside_shard_map = jax.sharding.AxisType.Manual in mesh.axis_types
    return 1 if mesh.empty or inside_shard_map else mesh.size


def replicated(mesh: Mesh) -> NamedSharding:
    """One replicated sharding; as a pytree prefix it covers a whole tree (inputs or outputs)."""
    return NamedSharding(mesh, PartitionSpec())
