"""A members run's files (``rlx train CONFIG --seeds N --sweep ...``): a ``RunFiles`` over
the aggregate files at the top and one single-run directory per member.

Run directory::

    config.yaml      the base config (train.seed = the first seed)
    members.json     the seeds, the sweep and each member's setting, seed and directory
    metrics.jsonl    one row per chunk: every metric's mean over the members
    checkpoints/     one orbax save per chunk of the stacked state (every member)
    members/<i>/     each member a single-seed run directory (config.yaml, metrics.jsonl,
                     tb/, summary.json): ``rlx train --resume RUN_DIR/members/<i>`` restores
                     its slice of the newest checkpoint and continues it alone (``detached``)
    sweep.md, .json  per setting: the final eval primary return and return, mean and 95%
    sweep.png        bootstrap CI over its seeds, ranked (``rlx.run.sweep_table``)
    summary.json     the aggregate summary, with the per-setting table

``rlx train --resume RUN_DIR`` continues all members from the newest chunk every member has a
checkpoint of (the same state as an uninterrupted run).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from rlx import config as config_lib
from rlx.core import runtime
from rlx.core.types import PyTree
from rlx.run import rundir, sweep_table
from rlx.run.files import TIMING_KEYS, Resumed, SummaryOf
from rlx.run.sweep import Member, member_index, read_plan, write_plan

KIND = "train-members"  # the run kind in a members run's checkpoint records
DETACHED = "detached.json"  # in a member's directory once it was resumed alone


class MembersRun:
    """A members run's files: the aggregate ones and the stacked checkpoints at the top, one
    ``rundir.Run`` per member for its config, rows, TensorBoard and summary (see the module
    docstring). One orbax save per chunk holds every member, so checkpointing costs about what
    a single run's does; a member resumed alone restores its slice of it (``restore_alone``)."""

    def __init__(
        self,
        config: config_lib.Config,
        members: tuple[Member, ...],
        member_configs: tuple[config_lib.Config, ...],
        run_dir: Path,
        resume: bool,
        allow_config_change: bool = False,
    ):
        self.dir, self.config = run_dir, config
        self.members, self.member_configs = members, member_configs
        self.metrics_path = run_dir / "metrics.jsonl"
        self.allow_config_change = allow_config_change
        self.primary = runtime.is_primary()  # in a multi-process run, process 0 writes files
        if not resume and self.primary:
            if run_dir.exists() and any(run_dir.iterdir()) and not rundir.unstarted(run_dir):
                raise rundir.RunDirError(f"run directory {run_dir} exists and is not empty")
            run_dir.mkdir(parents=True, exist_ok=True)
            self.metrics_path.unlink(missing_ok=True)
            (run_dir / "config.yaml").write_text(config_lib.dump(self.config))
            write_plan(run_dir, self.members)
        elif resume:
            detached = [
                m.directory for m in self.members if (run_dir / m.directory / DETACHED).exists()
            ]
            if detached:
                raise rundir.RunDirError(
                    f"{run_dir}: {', '.join(detached)} went on alone (rlx train --resume "
                    f"{run_dir / detached[0]}) and no longer matches this run's checkpoint: "
                    "resume the members alone, or start the run again"
                )
        runtime.barrier("rlx-members-dir")
        self.checkpointer = None
        if self.config.run.checkpoint or resume:
            from rlx.run.checkpoint import Checkpointer

            self.checkpointer = Checkpointer(
                run_dir / "checkpoints", self.config.run.max_checkpoints
            )
        self.runs = [
            rundir.Run(
                config,
                "train",
                run_dir / m.directory,
                resume,
                allow_config_change,
                checkpoints=False,
            )
            for m, config in zip(self.members, self.member_configs, strict=True)
        ]
        self.member_rows: list[list[dict]] = [[] for _ in self.members]

    def restore(self, abstract_state) -> Resumed | None:
        """(stacked state, chunks done, wall seconds, the top rows up to it) from the newest
        valid stacked checkpoint; each member's rows are cut back to it too. None when there is
        none (the run starts again, its rows dropped)."""
        found = self.checkpointer.restore_newest_valid(abstract_state, expect={"kind": KIND})
        step, state, wall = 0, None, 0.0
        if found is not None:
            state, record = found
            step, wall = int(record["chunk"]), float(record["wall_s"])
            changed = rundir.config_changes(record["config"], config_lib.dump(self.config))
            if changed and not self.allow_config_change:
                raise rundir.ConfigChangedError(
                    f"{self.dir / 'config.yaml'} differs from the config checkpoint {step} was "
                    f"written with, in {', '.join(changed)} (undo the edit, or pass "
                    "--allow-config-change)"
                )
        rows = [r for r in rundir.read_rows(self.metrics_path) if r["chunk"] <= step]
        if self.primary:
            rundir.write_rows(self.metrics_path, rows)
        for i, run in enumerate(self.runs):
            kept = [r for r in rundir.read_rows(run.metrics_path) if r["chunk"] <= step]
            if self.primary:
                rundir.write_rows(run.metrics_path, kept)
            self.member_rows[i] = kept
        return None if found is None else Resumed(state, step, wall, rows)

    def open_loggers(self, rows: list[dict]) -> None:
        """Each member's TensorBoard, with its kept rows (a members run logs no W&B)."""
        for run, kept in zip(self.runs, self.member_rows, strict=True):
            run.open_tensorboard(kept)

    def write(
        self, row: dict, learner_rows: list[dict], state: PyTree, checkpoint: bool = True
    ) -> None:
        """The top row, each member's row (with the run's timings), then one checkpoint of
        the stacked state (none for a diverged one)."""
        if self.primary:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(row, allow_nan=False) + "\n")
        timing = {k: row[k] for k in TIMING_KEYS if k in row}
        for i, (run, member_row) in enumerate(zip(self.runs, learner_rows, strict=True)):
            member_row = member_row | timing
            run.write(member_row, [member_row], None, checkpoint=False)
            self.member_rows[i].append(member_row)
        if self.checkpointer is not None and checkpoint:
            record = {
                "chunk": row["chunk"],
                "wall_s": row["wall_s"],
                "config": config_lib.dump(self.config),
                "kind": KIND,
                "member_configs": [config_lib.dump(c) for c in self.member_configs],
            }
            self.checkpointer.save(row["chunk"], state, record)

    def last_checkpoint(self) -> int | None:
        return None if self.checkpointer is None else self.checkpointer.latest_step()

    def add_video(self, tag: str, frames: np.ndarray, step: int, fps: float, path: Path) -> None:
        """A members run records no videos (its program has none): nothing to log."""

    def divergence(self, learners: list[int]) -> dict:
        """The members (indices, as in members.json) that went non-finite."""
        return {"members": [self.members[i].index for i in learners]}

    def close(self) -> None:
        for run in self.runs:
            run.close()
        if self.checkpointer is not None:
            self.checkpointer.close()

    def finish(self, summary_of: SummaryOf) -> dict:
        """Writes each member's summary.json and the per-setting table (sweep.md/.json/.png);
        returns the member count and the table for the run's summary."""
        finals = []
        for run, rows in zip(self.runs, self.member_rows, strict=True):
            summary = summary_of(rows, run.dir)
            if self.primary:
                (run.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            finals.append(summary)
        table = sweep_table.settings_table(self.members, finals)
        out = {"members": len(self.members), "sweep": table}
        if not self.primary:
            return out
        (self.dir / "sweep.json").write_text(json.dumps(table, indent=1) + "\n")
        (self.dir / "sweep.md").write_text(sweep_table.settings_markdown(table))
        sweep_table.plot_settings(table, self.dir / "sweep.png")
        return out


def restore_alone(
    member_dir: Path, abstract_state, step: int | None = None, detach: bool = True
) -> tuple[PyTree, dict] | None:
    """(state, record) of a members run's member from the run's newest valid stacked
    checkpoint (or the one of chunk ``step``), for ``rlx train --resume RUN_DIR/members/<i>``
    and ``rlx eval``; None when ``member_dir`` is not a member or the run has no checkpoint.
    With ``detach`` the member is marked detached: it goes on alone from here, and the members
    run can no longer resume it."""
    member_dir = Path(member_dir)
    run_dir = member_dir.parent.parent
    index = member_index(member_dir)
    if index is None or not (run_dir / "checkpoints").is_dir():
        return None
    _, _, members = read_plan(run_dir)
    from rlx.run.checkpoint import Checkpointer

    stacked = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((len(members), *x.shape), x.dtype), abstract_state
    )
    checkpointer = Checkpointer(run_dir / "checkpoints")
    try:
        if step is None:
            found = checkpointer.restore_newest_valid(stacked, expect={"kind": KIND})
        elif step in checkpointer._manager.all_steps():
            found = checkpointer.restore(stacked, step, expect={"kind": KIND})
        else:
            found = None
    finally:
        checkpointer.close()
    if found is None:
        return None
    state, record = found
    record = {**record, "config": record["member_configs"][index], "kind": "train"}
    if detach:
        (member_dir / DETACHED).write_text(json.dumps({"from_chunk": record["chunk"]}) + "\n")
    return jax.tree.map(lambda x: x[index], state), record


class DetachedMemberRun(rundir.Run):
    """A member of a members run resumed alone (``rlx train --resume RUN_DIR/members/<i>``):
    a single run whose first checkpoint is its slice of the members run's newest one."""

    def _restore_checkpoint(self, abstract_state) -> tuple[PyTree, dict] | None:
        own = super()._restore_checkpoint(abstract_state)
        return own if own is not None else restore_alone(self.dir, abstract_state)
