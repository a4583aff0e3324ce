"""What the driver asks of a run's files, whatever kind of run it is (``RunFiles``).

A single run (``rlx.run.rundir.Run``: ``rlx train``, ``rlx meta`` with any method, a
population included) and a members run (``rlx.run.members_dir.MembersRun``: ``--seeds`` and
``--sweep``) implement it. The program that the driver runs carries the factory of its files
(``Program.open_files``), so the driver never asks which kind it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from rlx.core.types import PyTree

# Keys of metrics.jsonl rows that measure time; everything else is reproducible exactly.
TIMING_KEYS = (
    "wall_s",
    "train/steps_per_s",
    "chunk_s",
    "eval_s",
    "compile_s",
    "trace_s",
    "video_s",
)

# (a learner's rows, its directory) -> that learner's summary (built by the driver)
SummaryOf = Callable[[list[dict], Path], dict]


class Resumed(NamedTuple):
    """Where a resumed run picks up: its state, the chunks done, the wall seconds so far and
    the metrics rows kept up to that checkpoint."""

    state: PyTree
    chunk: int
    wall_s: float
    rows: list[dict]


class RunFiles(Protocol):
    """The files of a run directory, as the driver writes and reads them.

    A chunk gives the driver one row per learner (``learner_rows``, in the program's learner
    order: one for a single run) and the run's row (their mean: ``row``); the files write what
    their kind keeps of them.
    """

    dir: Path

    def restore(self, abstract_state: PyTree) -> Resumed | None:
        """The newest valid checkpoint's state read into ``abstract_state``'s shapes and
        shardings, with the rows kept up to it; None when there is none."""

    def open_loggers(self, rows: list[dict]) -> None:
        """TensorBoard (and W&B where configured), started afresh with the kept ``rows``."""

    def write(self, row: dict, learner_rows: list[dict], state: PyTree, checkpoint: bool) -> None:
        """Appends the chunk's rows, then checkpoints ``state`` unless ``checkpoint`` is false
        (a diverged state never replaces a finite checkpoint)."""

    def add_video(self, tag: str, frames: np.ndarray, step: int, fps: float, path: Path) -> None:
        """Logs a video [T, H, W, 3] written to ``path`` at env step ``step``."""

    def last_checkpoint(self) -> int | None:
        """The newest checkpoint's chunk (None: none)."""

    def divergence(self, learners: list[int]) -> dict:
        """What the run's ``diverged`` summary adds about the learners (indices) that went
        non-finite: e.g. the members, for a members run."""

    def finish(self, summary_of: SummaryOf) -> dict:
        """Writes the end-of-run files of the kind (each member's summary, the sweep table) and
        returns the keys the kind adds to the run's summary."""

    def close(self) -> None:
        """Closes the writers and the checkpointer."""
