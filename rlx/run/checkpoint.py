"""Orbax checkpoints of a whole TrainState plus a JSON record, for exact resume.

PRNG key arrays are stored as their raw key data and re-wrapped on restore, so any key
implementation round-trips. Each record carries the checkpoint ``format`` (the layout of the
state tree; a checkpoint of another format fails to restore with one line naming both) and a
``checksum`` of the stored arrays, checked on restore. ``restore_newest_valid`` falls back past
damaged checkpoints, moving each to ``<directory>/damaged/<step>``.
"""

from __future__ import annotations

import shutil
import sys
import zlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from rlx.core.types import PyTree


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_empty(x: Any) -> bool:
    return hasattr(x, "size") and x.size == 0


# Orbax refuses zero-size arrays (MJX data has some); they are stored as this placeholder and
# rebuilt from the abstract state's shape on restore.
_EMPTY = np.zeros((), np.int8)


def _to_storable(tree: PyTree) -> PyTree:
    def convert(x):
        if _is_key(x):
            return jax.random.key_data(x)
        return _EMPTY if _is_empty(x) else x

    return jax.tree.map(convert, tree)


def _abstract_storable(abstract: PyTree) -> PyTree:
    """The stored tree's shapes and dtypes, each with the abstract leaf's sharding (where it
    has one: orbax then reads each process's shards straight into place)."""

    def convert(x):
        # none given: this process's first device (not the topology the checkpoint was written on)
        sharding = getattr(x, "sharding", None) or jax.sharding.SingleDeviceSharding(
            jax.local_devices()[0]
        )
        if _is_key(x):
            data = jax.eval_shape(jax.random.key_data, x)
            return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)
        if _is_empty(x):
            return jax.ShapeDtypeStruct(_EMPTY.shape, _EMPTY.dtype)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(convert, abstract)


def _from_storable(abstract: PyTree, x: PyTree) -> PyTree:
    if _is_key(abstract):
        return jax.random.wrap_key_data(x)
    if _is_empty(abstract):
        return jnp.zeros(abstract.shape, abstract.dtype)
    return x


# The layout of the checkpointed state tree. 1: before 2026-12 (no format in the record);
# 2: EnvState's signals/next_signals and Hparams' reward_params renames; 3: a population's
# fitness history (PopulationState.history).
FORMAT = 3
# The on-disk item names of a checkpoint: the state tree and the JSON record beside it.
_STATE, _RECORD = "state", "meta"


class CheckpointFormatError(ValueError):
    """A checkpoint written with another state layout than this version of rlx reads."""


class CheckpointMismatchError(ValueError):
    """A checkpoint whose record says it belongs to another kind of run than the caller's."""


class CheckpointTopologyError(CheckpointFormatError):
    """A sound checkpoint that this device topology cannot read (orbax could not reshard it)."""


class CheckpointStructureError(CheckpointFormatError):
    """A sound checkpoint whose state tree differs from the one this run builds (the env, the
    reward or the config changed since it was written): refused, never moved aside."""


class CheckpointDamagedError(ValueError):
    """A checkpoint whose files do not restore, or whose arrays fail their checksum."""


def checksum(storable: PyTree) -> str:
    """CRC-32 over the stored arrays' dtypes, shapes and bytes, in tree order (hex). An array
    split over several processes is gathered first (a collective: every process calls this)."""
    crc = 0
    for leaf in jax.tree.leaves(storable):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            leaf = multihost_utils.process_allgather(leaf, tiled=True)
        array = np.ascontiguousarray(jax.device_get(leaf))
        crc = zlib.crc32(f"{array.dtype}{array.shape}".encode(), crc)
        crc = zlib.crc32(array.tobytes(), crc)
    return f"{crc:08x}"


def _structure_error(error: Exception, where: Path) -> CheckpointStructureError | None:
    """The one-line error for orbax's "tree structures do not match" (the first path that
    differs named), or None for any other failure."""
    text = " ".join(str(error).split())
    marker = "tree structures do not match:"
    if marker not in text:
        return None
    path = text.split(marker, 1)[1].split(": -", 1)[0].strip()[:120]
    return CheckpointStructureError(
        f"{where}: its state differs from the one this run builds (first at {path}): the env, "
        "the reward or the config changed since it was written; nothing was moved (restore it "
        "with the code and config that wrote it, or start a new run)"
    )


class Checkpointer:
    """Saves ``(state, record)`` at integer steps under ``directory``; keeps ``max_to_keep``.

    ``record`` is a JSON-able dict (the driver's chunk count, wall time and config); the
    checkpoint format is added to it on save and checked on restore.
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep)
        )

    def save(self, step: int, state: PyTree, record: dict) -> None:
        """Writes synchronously: the caller may donate ``state``'s buffers right after."""
        from rlx.core import interrupts

        storable = _to_storable(state)
        record = {**record, "format": FORMAT, "checksum": checksum(storable)}
        items = {_STATE: ocp.args.StandardSave(storable), _RECORD: ocp.args.JsonSave(record)}
        self._manager.save(step, args=ocp.args.Composite(**items))
        interrupts.fault("checkpoint")  # RLX_FAULT=checkpoint: killed mid-write
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore_newest_valid(
        self, abstract_state: PyTree, expect: dict | None = None
    ) -> tuple[PyTree, dict] | None:
        """(state, record) of the newest checkpoint that restores and passes its checksum,
        None when there is none. Each damaged one met on the way is moved to
        ``damaged/<step>`` (kept, out of orbax's way) with one line on stderr saying why.
        Format and kind mismatches raise, as in ``restore``."""
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                return self.restore(abstract_state, step, expect)
            except (CheckpointFormatError, CheckpointMismatchError):
                raise
            except Exception as error:  # noqa: BLE001 (any failure to read is damage)
                if "opology mismatch" in str(error):  # sound, written on other devices
                    raise CheckpointTopologyError(
                        f"{self.directory / str(step)}: written on another device topology "
                        "and not restorable on this one (resume with the process and device "
                        "count it was written with)"
                    ) from None
                self._quarantine(step, error)
        return None

    def _quarantine(self, step: int, error: Exception) -> None:
        from rlx.core import runtime

        if not runtime.is_primary():  # process 0 moves it; the others wait for that
            runtime.barrier(f"rlx-quarantine-{step}")
            self._manager.reload()
            return
        target = self.directory / "damaged" / str(step)
        n = 1
        while target.exists():
            n += 1
            target = self.directory / "damaged" / f"{step}-{n}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.directory / str(step)), str(target))
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        print(
            f"[rlx] warning: checkpoint {step} is damaged ({type(error).__name__}: {reason}); "
            f"moved to {target}, trying the one before",
            file=sys.stderr,
            flush=True,
        )
        runtime.barrier(f"rlx-quarantine-{step}")
        self._manager.reload()

    def restore(
        self, abstract_state: PyTree, step: int | None = None, expect: dict | None = None
    ) -> tuple[PyTree, dict]:
        """(state, record) at ``step`` (default: latest); ``abstract_state`` from eval_shape.

        Raises ``CheckpointFormatError`` for a checkpoint of another format, and
        ``CheckpointMismatchError`` when the record's value of a key in ``expect`` differs
        (both before the state is read), ``CheckpointDamagedError`` when the arrays read fail
        the record's checksum.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        only_record = ocp.args.Composite(**{_RECORD: ocp.args.JsonRestore()})
        record = self._manager.restore(step, args=only_record)[_RECORD]
        found = record.get("format", 1)
        if found != FORMAT:
            raise CheckpointFormatError(
                f"{self.directory / str(step)}: checkpoint format {found} found, format "
                f"{FORMAT} expected (written by another version of rlx; resume it with that "
                "version or start a new run)"
            )
        for key, wanted in (expect or {}).items():
            if key in record and record[key] != wanted:
                raise CheckpointMismatchError(
                    f"{self.directory / str(step)}: {key} {record[key]!r} found, {wanted!r} "
                    "expected"
                )
        items = {
            _STATE: ocp.args.StandardRestore(_abstract_storable(abstract_state)),
            _RECORD: ocp.args.JsonRestore(),
        }
        # With several processes each reads its own shards, and what one read may be unusable
        # where the others' is fine; they agree before the checksum (a collective) or the
        # quarantine (a barrier), so all of them take the same path. (A read that fails inside
        # orbax's own collective restore ends in orbax's barrier timeout instead.)
        from rlx.core import interrupts, runtime

        failure = None
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**items))
            interrupts.read_fault("restore")
        except Exception as error:  # noqa: BLE001 (re-raised below, on every process)
            failure = _structure_error(error, self.directory / str(step)) or error
        if runtime.any_process(failure is not None):
            if failure is not None:
                raise failure
            raise CheckpointDamagedError(
                f"{self.directory / str(step)}: unreadable on another process"
            )
        expected = record.get("checksum")
        if expected is not None and checksum(restored[_STATE]) != expected:
            raise CheckpointDamagedError(f"checksum {checksum(restored[_STATE])} != {expected}")
        state = jax.tree.map(_from_storable, abstract_state, restored[_STATE])
        return state, restored[_RECORD]

    def close(self) -> None:
        self._manager.close()
