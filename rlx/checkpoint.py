"""Orbax checkpoints of a whole TrainState plus JSON metadata, for exact resume.

PRNG key arrays are stored as their raw key data and re-wrapped on restore, so any key
implementation round-trips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_empty(x: Any) -> bool:
    return hasattr(x, "size") and x.size == 0


# Orbax refuses zero-size arrays (MJX data has some); they are stored as this placeholder and
# rebuilt from the abstract state's shape on restore.
_EMPTY = np.zeros((), np.int8)


def _to_storable(tree: Any) -> Any:
    def convert(x):
        if _is_key(x):
            return jax.random.key_data(x)
        return _EMPTY if _is_empty(x) else x

    return jax.tree.map(convert, tree)


def _abstract_storable(abstract: Any) -> Any:
    def convert(x):
        if _is_key(x):
            return jax.eval_shape(jax.random.key_data, x)
        if _is_empty(x):
            return jax.ShapeDtypeStruct(_EMPTY.shape, _EMPTY.dtype)
        return jax.ShapeDtypeStruct(x.shape, x.dtype)

    return jax.tree.map(convert, abstract)


def _from_storable(abstract: Any, x: Any) -> Any:
    if _is_key(abstract):
        return jax.random.wrap_key_data(x)
    if _is_empty(abstract):
        return jnp.zeros(abstract.shape, abstract.dtype)
    return x


class Checkpointer:
    """Saves ``(state, meta)`` at integer steps under ``directory``; keeps ``max_to_keep``."""

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep)
        )

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Writes synchronously: the caller may donate ``state``'s buffers right after."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_to_storable(state)), meta=ocp.args.JsonSave(meta)
            ),
        )
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """(state, meta) at ``step`` (default: latest); ``abstract_state`` from eval_shape."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract_storable(abstract_state)),
                meta=ocp.args.JsonRestore(),
            ),
        )
        state = jax.tree.map(_from_storable, abstract_state, restored["state"])
        return state, restored["meta"]

    def close(self) -> None:
        self._manager.close()
