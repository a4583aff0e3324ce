"""Orbax checkpoints of a whole TrainState plus JSON metadata, for exact resume.

PRNG key arrays are stored as their raw key data and re-wrapped on restore, so any key
implementation round-trips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract_storable(abstract: Any) -> Any:
    def convert(x):
        if _is_key(x):
            return jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(x.shape, x.dtype)

    return jax.tree.map(convert, abstract)


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
        state = jax.tree.map(
            lambda a, x: jax.random.wrap_key_data(x) if _is_key(a) else x,
            abstract_state,
            restored["state"],
        )
        return state, restored["meta"]

    def close(self) -> None:
        self._manager.close()
