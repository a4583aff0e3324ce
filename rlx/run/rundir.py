"""A run directory's files, as the driver writes and reads them back, losing nothing.

``config.yaml`` (resolved), ``metrics.jsonl`` (one row per chunk), TensorBoard events under
``tb/`` (rebuilt from the kept rows on resume, so no step appears twice), ``checkpoints/``
(each with a record of its chunk, wall time, config and run kind), ``config_changes.jsonl``
(what ``--allow-config-change`` let through), and at the end ``summary.json``.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from rlx import config as config_lib
from rlx.core import interrupts, runtime
from rlx.core.types import PyTree
from rlx.run.checkpoint import Checkpointer
from rlx.run.files import Resumed


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (the message says why, in one line)."""


class ConfigChangedError(RunDirError):
    """The run directory's config.yaml differs from the config its checkpoint was written with."""


def default_run_dir(config: config_lib.Config, name: str) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(config.run.root) / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    return path


def unstarted(path: Path) -> bool:
    """Whether ``path`` holds a run stopped before it had anything to keep: no checkpoint and
    no metrics row (killed during compile, say). Starting it again reuses the directory."""
    if not (path / "config.yaml").is_file() or (path / "summary.json").exists():
        return False
    names = {p.name for p in path.iterdir()} - {"config.yaml", "checkpoints", "tb"}
    metrics = path / "metrics.jsonl"
    if names - {"metrics.jsonl"} or (metrics.exists() and metrics.read_text().strip()):
        return False
    checkpoints = path / "checkpoints"
    return not checkpoints.exists() or not any(p.name.isdigit() for p in checkpoints.iterdir())


def problem(path: Path, resume: bool) -> str | None:
    """Why ``path`` cannot be the run directory (None when it can); checked before anything
    is built or written. A new run needs a missing, empty or unstarted directory that can be
    created and written; a resumed one a directory with a config.yaml that can be written."""
    if "\x00" in str(path) or any(len(os.fsencode(part)) > 255 for part in path.parts):
        return f"run directory {str(path)!r}: not a valid path"
    if resume:
        if not (path / "config.yaml").is_file():
            return f"{path}: not a run directory (no config.yaml)"
    elif path.exists():
        if not path.is_dir():
            return f"run directory {path} exists and is not a directory"
        if any(path.iterdir()) and not unstarted(path):
            return f"run directory {path} exists and is not empty (use --resume)"
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"run directory {path}: {existing} is not a directory"
    try:  # root passes os.access everywhere: try it (and leave nothing behind)
        tempfile.TemporaryDirectory(dir=existing, prefix=".rlx-probe-").cleanup()
    except OSError as error:
        return f"run directory {path}: {existing} is not writable ({error.strerror})"
    return None


def problem_everywhere(path: Path, resume: bool) -> str | None:
    """``problem`` as process 0 finds it, the same answer in every process of a multi-process
    run (a collective: all call it at the same point; only process 0 looks at the files)."""
    found = problem(path, resume) if runtime.is_primary() else None
    if runtime.any_process(found is not None):
        return found or f"process 0 refused the run directory {path}"
    return None


def read_rows(path: Path) -> list[dict]:
    """metrics.jsonl's rows; a truncated last line (the process was killed writing it) is
    dropped with a warning, any other unreadable line is a RunDirError."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise RunDirError(f"{path}: line {number} is not a JSON row") from None
            print(
                f"[rlx] warning: {path}: dropped its truncated last line (the process was "
                "stopped while writing it; that chunk is run again)",
                file=sys.stderr,
                flush=True,
            )
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def config_changes(old: str, new: str) -> dict[str, list]:
    """Dotted keys whose values differ between two dumped configs: key -> [old, new]. A key
    the old dump lacks (added to rlx since) at its default value is no change: the old run
    ran with that default's behaviour."""

    def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(tree, dict):
            return {prefix: tree}
        out = {}
        for key, value in tree.items():
            out |= flat(value, f"{prefix}.{key}" if prefix else str(key))
        return out

    a, b = flat(yaml.safe_load(old)), flat(yaml.safe_load(new))
    defaults = flat(yaml.safe_load(config_lib.dump(config_lib.Config()))) | _default_keys()
    return {
        k: [a.get(k), b.get(k)]
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k) and not (k not in a and k in defaults and defaults[k] == b[k])
    }


def _default_keys() -> dict[str, Any]:
    """Defaults of keys added since runs were first written that a default ``Config`` does
    not dump (every schema field's default comes from that dump, e.g. ``meta.keep_start``):
    the env-specific ``env.params.*`` (the MJX envs' ``impl``, CartPole's ``observation``),
    a user env's hash, and, as named before that dump was used, ``eval.video_*``,
    ``run.wandb.*``, the watchdog's timeout, ``network.memory*``, ``env.sim2real.*``."""
    from rlx.config import EvalConfig, NetworkConfig, WandbConfig

    fields = ("deterministic", "video_every_chunks", "video_width", "video_height")
    out = {f"eval.{name}": getattr(EvalConfig(), name) for name in fields}
    out |= {f"run.wandb.{k}": v for k, v in vars(WandbConfig()).items()}
    out |= {"env.file_sha256": "", "run.stall_timeout_s": 1800.0}  # a user env's hash; the watchdog
    out |= {f"network.{k}": getattr(NetworkConfig(), k) for k in ("memory", "memory_size")}
    out |= {"env.params.observation": "full"}  # CartPole's
    from rlx.envs.schema import SimToRealConfig

    out |= {f"env.sim2real.{k}": v for k, v in vars(SimToRealConfig()).items()}
    return out | {"env.params.impl": "jax"}  # the MJX envs' implementation


_UNLOGGED = ("chunk", "iteration", "env_steps", "nonfinite")


def _scalars(row: dict) -> dict:
    """A metrics row's scalars as TensorBoard and W&B log them (no bookkeeping keys, no
    missing values)."""
    return {
        k: v
        for k, v in row.items()
        if v is not None and k not in _UNLOGGED and isinstance(v, int | float)
    }


class Run:
    """The files of one run directory (see the module docstring): a ``rlx.run.files.RunFiles``
    of a single learner, or of a meta-learner of any method. In a multi-process run only
    process 0 writes them; every process takes part in the checkpoints (orbax writes each
    process's shards) and reads them back."""

    def __init__(
        self,
        config,
        kind: str,
        run_dir: Path,
        resume: bool,
        allow_config_change=False,
        checkpoints: bool = True,
    ):
        self.dir, self.config, self.kind = run_dir, config, kind
        self.allow_config_change = allow_config_change
        self.metrics_path = run_dir / "metrics.jsonl"
        self.primary = runtime.is_primary()
        if not resume and self.primary:
            if run_dir.exists() and any(run_dir.iterdir()) and not unstarted(run_dir):
                raise RunDirError(f"run directory {run_dir} exists and is not empty")
            run_dir.mkdir(parents=True, exist_ok=True)
            for stale in ("tb", "metrics.jsonl"):  # left by a start that was stopped
                shutil.rmtree(run_dir / stale, ignore_errors=True)
            (run_dir / "config.yaml").write_text(config_lib.dump(config))
        runtime.barrier("rlx-run-dir")  # the directory exists before the others use it
        self.checkpointer = None
        if checkpoints and (config.run.checkpoint or resume):
            self.checkpointer = Checkpointer(run_dir / "checkpoints", config.run.max_checkpoints)
        self.writer = None
        self.wandb = None
        self.wandb_init_s = None

    def open_wandb(self) -> None:
        """Starts (or, on resume, continues: the id is kept in ``wandb_id``) the W&B run of
        ``run.wandb`` when its mode is not off; its files go under the run directory."""
        settings = self.config.run.wandb
        if settings.mode == "off" or not self.primary:
            return
        import time

        try:
            import wandb
        except ImportError:
            raise RunDirError(
                "run.wandb.mode: W&B logging needs wandb: pip install -c constraints.txt '.[wandb]'"
            ) from None
        id_file = self.dir / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
        start = time.perf_counter()
        try:
            self.wandb = self._wandb_init(wandb, settings, run_id)
        except Exception as error:  # noqa: BLE001 (login, network, a bad entity, ...)
            reason = " ".join(str(error).split())[:200]
            raise RunDirError(
                f"run.wandb: W&B did not start ({type(error).__name__}: {reason}); "
                "run.wandb.mode=offline needs no account"
            ) from None
        self.wandb_init_s = time.perf_counter() - start

    def _wandb_init(self, wandb, settings, run_id: str):
        return wandb.init(
            project=settings.project,
            entity=settings.entity or None,
            mode=settings.mode,
            dir=str(self.dir),
            name=self.dir.name,
            id=run_id,
            resume="allow",
            config=config_lib.to_dict(self.config),
            settings=wandb.Settings(console="off", silent=True),
        )

    def restore(self, abstract_state) -> Resumed | None:
        """(state, chunks done, wall seconds so far, metrics rows up to the checkpoint) from
        the newest checkpoint that restores (damaged ones moved aside); None when there is
        none (the run starts from scratch with its stored config, its rows dropped)."""
        found = self._restore_checkpoint(abstract_state)
        state, start_chunk, wall_offset = None, 0, 0.0
        if found is not None:
            state, record = found
            start_chunk, wall_offset = int(record["chunk"]), float(record["wall_s"])
            self._check_config(record, start_chunk)
        rows = [r for r in read_rows(self.metrics_path) if r["chunk"] <= start_chunk]
        if self.primary:
            write_rows(self.metrics_path, rows)  # Drop rows written after the last checkpoint.
        return None if found is None else Resumed(state, start_chunk, wall_offset, rows)

    def _restore_checkpoint(self, abstract_state) -> tuple[PyTree, dict] | None:
        """(state, record) of the newest valid checkpoint of this run's kind, or None."""
        return self.checkpointer.restore_newest_valid(abstract_state, expect={"kind": self.kind})

    def _check_config(self, record: dict, chunk: int) -> None:
        changed = config_changes(record["config"], config_lib.dump(self.config))
        if not changed:
            return
        if not self.allow_config_change:
            keys = ", ".join(changed)
            raise ConfigChangedError(
                f"{self.dir / 'config.yaml'} differs from the config checkpoint {chunk} was "
                f"written with, in {keys} (undo the edit, or pass --allow-config-change)"
            )
        if self.primary:
            with (self.dir / "config_changes.jsonl").open("a") as f:
                f.write(json.dumps({"chunk": chunk, "changed": changed}) + "\n")

    def open_loggers(self, rows: list[dict]) -> None:
        """TensorBoard afresh with the kept ``rows``, and W&B where ``run.wandb`` is on."""
        self.open_tensorboard(rows)
        self.open_wandb()

    def open_tensorboard(self, rows: list[dict]) -> None:
        """Starts ``tb/`` afresh with ``rows`` (the kept ones on a resume): events of chunks
        dropped after the last checkpoint never appear next to their re-run."""
        if not self.config.run.tensorboard or not self.primary:
            return
        from tensorboardX import SummaryWriter

        tb, rebuilt = self.dir / "tb", self.dir / "tb.rebuilding"
        shutil.rmtree(rebuilt, ignore_errors=True)
        # Its own file name: the writer opened next may start within the same second.
        self.writer = SummaryWriter(str(rebuilt), filename_suffix=".kept")
        for row in rows:
            self._log(row)
        self.writer.flush()
        self.writer.close()
        shutil.rmtree(tb, ignore_errors=True)
        rebuilt.rename(tb)
        self.writer = SummaryWriter(str(tb))

    def _log(self, row: dict) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, row["env_steps"])

    def _write_wandb_summary(self, files_dir: Path) -> None:
        """``files/wandb-summary.json`` in an offline run: each scalar's last value over
        ``metrics.jsonl``'s rows (what W&B's summary holds), and ``_step``. wandb >= 0.18 writes
        no such file offline (wandb/wandb#9646), and an offline run on a cluster node is where
        a user reads it; the rows make it whole across resumes. Written once W&B has finished,
        so it replaces the file where a later wandb writes its own."""
        if self.config.run.wandb.mode != "offline" or not self.metrics_path.exists():
            return
        summary: dict = {}
        for row in read_rows(self.metrics_path):
            summary |= _scalars(row) | {"_step": int(row["env_steps"])}
        path = files_dir / "wandb-summary.json"
        try:
            files_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        except OSError as error:
            print(f"[rlx] warning: {path} not written ({error})", file=sys.stderr)

    def _log_wandb(self, row: dict) -> None:
        self.wandb.log(_scalars(row), step=int(row["env_steps"]))

    def add_video(
        self, tag: str, video, step: int, fps: float, path: Path | None = None, max_frames=100
    ) -> None:
        """A TensorBoard image summary holding an animated GIF of ``video`` [T, H, W, 3]
        (TensorBoard's video form; at most ``max_frames`` frames, evenly picked), and the mp4
        at ``path`` to W&B."""
        if self.wandb is not None and path is not None:
            import wandb

            self.wandb.log({tag: wandb.Video(str(path), format="mp4")}, step=int(step))
        if self.writer is None:
            return
        import io

        import numpy as np
        from PIL import Image
        from tensorboardX.proto.summary_pb2 import Summary

        stride = max(1, -(-len(video) // max_frames))
        frames = [Image.fromarray(np.asarray(f)) for f in video[::stride]]
        buffer = io.BytesIO()
        duration = int(1000 * stride / fps)
        frames[0].save(
            buffer, "GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0
        )
        height, width = video.shape[1:3]
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue()
        )
        self.writer._get_file_writer().add_summary(
            Summary(value=[Summary.Value(tag=tag, image=image)]), step
        )
        self.writer.flush()

    def write(
        self, row: dict, learner_rows: list[dict], state: PyTree, checkpoint: bool = True
    ) -> None:
        """Appends ``row`` (JSON-safe; a single run's one learner row is the same) to
        metrics.jsonl and TensorBoard, then checkpoints ``state`` (unless ``checkpoint`` is
        false: a diverged state never replaces a finite checkpoint; ``state`` None: no
        checkpoint). Only process 0 writes files; every process takes part in the checkpoint."""
        if self.primary:
            self._append(row)
        if self.checkpointer is not None and checkpoint and state is not None:
            record = {
                "chunk": row["chunk"],
                "wall_s": row["wall_s"],
                "config": config_lib.dump(self.config),
                "kind": self.kind,
            }
            self.checkpointer.save(row["chunk"], state, record)

    def _append(self, row: dict) -> None:
        line = json.dumps(row, allow_nan=False) + "\n"
        with self.metrics_path.open("a") as f:
            half = len(line) // 2
            f.write(line[:half])
            if os.environ.get("RLX_FAULT"):
                f.flush()
                interrupts.fault("metrics")  # RLX_FAULT=metrics: killed with half a row written
            f.write(line[half:])
        if self.writer is not None:
            self._log(row)
            self.writer.flush()
        if self.wandb is not None:
            self._log_wandb(row)

    def last_checkpoint(self) -> int | None:
        """The newest checkpoint's step (its chunk), None when there is none."""
        return None if self.checkpointer is None else self.checkpointer.latest_step()

    def config_change_log(self) -> list[dict]:
        path = self.dir / "config_changes.jsonl"
        return read_rows(path) if path.exists() else []

    def divergence(self, learners: list[int]) -> dict:
        return {}

    def finish(self, summary_of) -> dict:
        """The keys a single run adds to its summary: W&B's start time and the config changes
        that ``--allow-config-change`` let through (where there are any)."""
        out: dict[str, Any] = {}
        if self.wandb_init_s is not None:
            out["wandb_init_s"] = self.wandb_init_s
        changes = self.config_change_log()
        if changes:
            out["config_changes"] = changes
        return out

    def close(self) -> None:
        """Closes the writers; a failure (a save cut short by a second Ctrl-C) is one line:
        resume falls back past a checkpoint left damaged."""
        if self.wandb is not None:
            files_dir = Path(self.wandb.dir)
            self.wandb.finish()
            self.wandb = None
            self._write_wandb_summary(files_dir)
        for closer in (self.writer, self.checkpointer):
            if closer is None:
                continue
            try:
                closer.close()
            except Exception as error:  # noqa: BLE001
                print(
                    f"[rlx] warning: closing {type(closer).__name__}: {type(error).__name__}",
                    file=sys.stderr,
                    flush=True,
                )
