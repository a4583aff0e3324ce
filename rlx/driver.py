"""The driver: the only host code. Chunks of jitted scans, logging, progress, checkpoints, eval.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (one row per chunk),
TensorBoard event files under ``tb/``, ``checkpoints/`` and, at the end, ``summary.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rlx import build as build_lib
from rlx import config as config_lib
from rlx import runtime, sharding
from rlx.checkpoint import Checkpointer
from rlx.progress import Progress

# Keys of metrics.jsonl rows that measure time; everything else is reproducible exactly.
# Metrics that are a current value, not a rate: a chunk's row keeps the last iteration's.
LAST_VALUE_PREFIXES = ("phi/", "weights/", "meta/gamma")
TIMING_KEYS = ("wall_s", "train/steps_per_s", "chunk_s", "eval_s", "compile_s", "trace_s")


def enable_compilation_cache(path: str) -> None:
    """Turns on JAX's persistent compilation cache at ``path`` ('' leaves it off)."""
    if path:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))


# Flags of the numerical guard computed inside the step (1.0: fine); not written to the rows.
GUARD_PREFIX = "guard/"
# Metrics that are non-finite by design: a population's fitness before any member has one
# (NaN mean, -inf best). They are written as null, never counted as divergence.
NAN_BY_DESIGN = ("meta/fitness_mean", "meta/fitness_best")
_EPISODE_NAMES = {
    "return": "train/return",
    "primary_return": "train/primary_return",
    "length": "train/episode_length",
}


def summarize_chunk(metrics: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Host-side reduction of a chunk's per-iteration metrics ([iterations] arrays).

    Episode statistics are totals over the episodes that ended in the chunk divided by their
    count (None when none ended); losses are means over iterations.
    """
    metrics = {k: v for k, v in metrics.items() if not k.startswith(GUARD_PREFIX)}
    episodes = float(np.sum(metrics["episode_total/episodes"]))
    row: dict[str, float | None] = {"train/episodes": episodes}
    for key, values in metrics.items():
        if key.startswith("episode_total/"):
            name = key.removeprefix("episode_total/")
            if name == "episodes":
                continue
            total = float(np.sum(values))
            row[_EPISODE_NAMES.get(name, name)] = total / episodes if episodes else None
        elif key == "train/learning_rate" or key.startswith(LAST_VALUE_PREFIXES):
            row[key] = float(values[-1])
        else:
            row[key] = float(np.mean(values))
    return row


def nonfinite_quantities(metrics: dict[str, np.ndarray]) -> list[str]:
    """The quantities of a chunk's metrics that went non-finite (or whose guard flag fell), by
    their row names (``loss/value``, ``terms/alive``, ``params``, ...); empty when all is well."""
    bad = []
    for key, values in metrics.items():
        if key.startswith(GUARD_PREFIX):
            if float(np.min(values)) < 1.0:
                bad.append(key.removeprefix(GUARD_PREFIX).removesuffix("_finite"))
        elif key not in NAN_BY_DESIGN and not np.all(np.isfinite(values)):
            name = key.removeprefix("episode_total/")
            bad.append(_EPISODE_NAMES.get(name, name))
    return bad


def json_safe(row: dict) -> dict:
    """``row`` with non-finite numbers written as None and listed under ``nonfinite``
    (``metrics.jsonl`` and ``summary.json`` stay valid JSON)."""
    bad = [k for k, v in row.items() if isinstance(v, float) and not np.isfinite(v)]
    if not bad:
        return row
    return {**{k: None if k in bad else v for k, v in row.items()}, "nonfinite": bad}


def default_run_dir(config: config_lib.Config, name: str) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(config.run.root) / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    return path


class _StopFlag:
    """SIGINT/SIGTERM request a stop at the next chunk boundary; a second Ctrl-C aborts."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    @contextlib.contextmanager
    def installed(self):
        if sys.platform == "win32" or not _in_main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


@dataclasses.dataclass(frozen=True)
class Program:
    """What the driver runs: pure functions of a state pytree and traced hparams.

    init: key -> state; chunk: (state, hparams, num_iterations) -> (state, metrics stacked over
    iterations); evaluate: (state, hparams, key) -> dict of [] values; shardings: (state, mesh)
    -> shardings of the state; steps_per_iteration: env steps one iteration takes (per learner);
    config: the resolved config the run directory records.
    """

    init: Callable[[jax.Array], Any]
    chunk: Callable[..., Any]
    evaluate: Callable[..., dict]
    hparams: Any
    iterations: int
    steps_per_iteration: int
    shardings: Callable[[Any, Any], Any]
    config: config_lib.Config
    kind: str = "train"  # the command that runs it: train or meta


def ppo_program(built: build_lib.Built) -> Program:
    """``rlx train``: PPO on the config's env and reward."""
    agent, hparams = built.agent, built.hparams
    return Program(
        init=lambda key: agent.init(key, hparams.reward_params),
        chunk=agent.train_chunk,
        evaluate=agent.evaluate,
        hparams=hparams,
        iterations=built.config.iterations,
        steps_per_iteration=agent.static.batch_size,
        shardings=sharding.state_shardings,
        config=built.config,
    )


def train(
    config: config_lib.Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    max_chunks: int | None = None,
) -> dict[str, Any]:
    """Trains per ``config`` into ``run_dir`` (new, or existing when ``resume``).

    ``max_chunks`` stops after that many chunks in this call (as an interrupt would), leaving a
    resumable run. Returns the summary that is also written to ``summary.json``. Raises
    ``ConfigError`` (before anything is written) for a config the env or reward refuses.
    """
    program = ppo_program(build_lib.build(config))
    return run(program, run_dir, resume=resume, show_progress=show_progress, max_chunks=max_chunks)


class _Run:
    """A run directory's files as the driver writes them: config, metrics, TensorBoard,
    checkpoints (with the ``chunk``, ``wall_s`` and ``config`` record beside each)."""

    def __init__(self, program: Program, run_dir: Path, resume: bool):
        config = program.config
        self.dir, self.config, self.kind = run_dir, config, program.kind
        self.metrics_path = run_dir / "metrics.jsonl"
        if not resume:
            if run_dir.exists() and any(run_dir.iterdir()):
                raise FileExistsError(f"run directory {run_dir} exists and is not empty")
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(config_lib.dump(config))
        self.checkpointer = None
        if config.run.checkpoint or resume:
            self.checkpointer = Checkpointer(run_dir / "checkpoints", config.run.max_checkpoints)
        self.writer = None
        if config.run.tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))

    def restore(self, abstract_state) -> tuple[Any, int, float, list[dict]]:
        """(state, chunks done, wall seconds so far, metrics rows up to the checkpoint)."""
        state, record = self.checkpointer.restore(abstract_state, expect={"kind": self.kind})
        start_chunk, wall_offset = int(record["chunk"]), float(record["wall_s"])
        rows = [r for r in _read_rows(self.metrics_path) if r["chunk"] <= start_chunk]
        _write_rows(self.metrics_path, rows)  # Drop rows written after the last checkpoint.
        return state, start_chunk, wall_offset, rows

    def write(self, row: dict, state: Any, checkpoint: bool = True) -> None:
        """Appends ``row`` (JSON-safe, see ``json_safe``) to metrics.jsonl and TensorBoard, then
        checkpoints ``state`` (unless ``checkpoint`` is false: a diverged state never replaces a
        finite checkpoint)."""
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                skip = key in ("chunk", "iteration", "env_steps", "nonfinite")
                if value is not None and not skip:
                    self.writer.add_scalar(key, value, row["env_steps"])
            self.writer.flush()
        if self.checkpointer is not None and checkpoint:
            record = {
                "chunk": row["chunk"],
                "wall_s": row["wall_s"],
                "config": config_lib.dump(self.config),
                "kind": self.kind,
            }
            self.checkpointer.save(row["chunk"], state, record)

    def last_checkpoint(self) -> int | None:
        """The newest checkpoint's step (its chunk), None when there is none."""
        return None if self.checkpointer is None else self.checkpointer.latest_step()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.checkpointer is not None:
            self.checkpointer.close()


def _compile(program: Program, state, hparams, mesh, chunk_iterations: int):
    """(compiled chunk, trace seconds, trace + compile seconds): the chunk jitted with the
    state's buffers donated and its shardings kept."""
    start = time.perf_counter()
    chunk_fn = jax.jit(
        functools.partial(program.chunk, num_iterations=chunk_iterations),
        donate_argnums=0,
        out_shardings=(program.shardings(state, mesh), sharding.replicated(mesh)),
    )
    lowered = chunk_fn.lower(state, hparams)
    trace_s = time.perf_counter() - start  # Python tracing and lowering to StableHLO
    compiled = lowered.compile()
    return compiled, trace_s, time.perf_counter() - start  # tracing + XLA compilation


def _mesh_for(config: config_lib.Config):
    mesh = sharding.make_mesh()
    if config.train.num_envs % mesh.size:
        raise config_lib.ConfigError(
            f"key 'train.num_envs': {config.train.num_envs} must be a multiple of the "
            f"{mesh.size} local devices (the env batch is split evenly over them)"
        )
    return mesh


def run(
    program: Program,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    max_chunks: int | None = None,
) -> dict[str, Any]:
    """Runs ``program`` chunk by chunk into ``run_dir`` (see ``train``)."""
    run_dir, config = Path(run_dir), program.config
    runtime.configure()
    mesh = _mesh_for(config)
    enable_compilation_cache(config.run.compilation_cache)
    devices = f"{mesh.size} x {mesh.devices.flat[0].device_kind}"
    if show_progress:
        print(f"[rlx] run directory: {run_dir}  devices: {devices}", flush=True)
    files = _Run(program, run_dir, resume)
    init_key = jax.random.key(config.train.seed)
    init_fn = jax.jit(program.init)
    if resume:
        state, start_chunk, wall_offset, rows = files.restore(jax.eval_shape(init_fn, init_key))
    else:
        state, start_chunk, wall_offset, rows = init_fn(init_key), 0, 0.0, []
    # The env batch axis is split over all local devices; the rest is replicated.
    state = jax.device_put(state, program.shardings(state, mesh))
    hparams = jax.device_put(program.hparams, sharding.replicated(mesh))
    start = time.perf_counter()
    compiled, trace_s, compile_s = _compile(
        program, state, hparams, mesh, config.run.chunk_iterations
    )
    loop = _Loop(program, files, compiled, jax.jit(program.evaluate), start, wall_offset)
    status, signum = loop.run(
        state, hparams, start_chunk, rows, (compile_s, trace_s), show_progress, max_chunks
    )
    files.close()
    summary = json_safe(_summary(rows, status, run_dir, compile_s))
    summary["devices"] = devices
    if loop.diverged is not None:
        summary["diverged"] = loop.diverged
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    summary["signal"] = signum
    return summary


class _Loop:
    """The chunk loop: run a compiled chunk, evaluate when due, write the row and checkpoint,
    stop at a chunk boundary on a signal or after ``max_chunks``."""

    def __init__(self, program, files, compiled, eval_fn, start: float, wall_offset: float):
        self.program, self.files, self.compiled, self.eval_fn = program, files, compiled, eval_fn
        self.start, self.wall_offset = start, wall_offset
        config = program.config
        self.chunk_iterations = config.run.chunk_iterations
        self.num_chunks = program.iterations // self.chunk_iterations
        self.steps_per_chunk = self.chunk_iterations * program.steps_per_iteration
        self.eval_key = jax.random.key(config.eval.seed)
        self.every = config.eval.every_chunks
        self.diverged: dict | None = None

    def row(self, chunk: int, metrics, chunk_s: float, state, hparams, evaluate=True) -> dict:
        row = {
            "chunk": chunk + 1,
            "iteration": (chunk + 1) * self.chunk_iterations,
            "env_steps": (chunk + 1) * self.steps_per_chunk,
        }
        row |= summarize_chunk(metrics)
        row["train/steps_per_s"] = self.steps_per_chunk / chunk_s
        row["chunk_s"] = chunk_s
        due = (chunk + 1) % self.every == 0 or chunk + 1 == self.num_chunks
        if evaluate and due:
            eval_start = time.perf_counter()
            results = jax.device_get(self.eval_fn(state, hparams, self.eval_key))
            row |= {k: float(v) for k, v in results.items()}
            row["eval_s"] = time.perf_counter() - eval_start
        return row

    def run(self, state, hparams, start_chunk, rows, timings, show_progress, max_chunks):
        """Chunks from ``start_chunk`` on, appending to ``rows``: (status, signal or None)."""
        stop, status = _StopFlag(), "completed"
        progress = Progress(
            total_steps=self.num_chunks * self.steps_per_chunk,
            done_steps=start_chunk * self.steps_per_chunk,
            enabled=show_progress,
        )
        with stop.installed(), progress:
            for chunk in range(start_chunk, self.num_chunks):
                chunk_start = time.perf_counter()
                state, metrics = self.compiled(state, hparams)
                metrics = jax.device_get(metrics)
                bad = nonfinite_quantities(metrics)
                chunk_s = time.perf_counter() - chunk_start
                row = self.row(chunk, metrics, chunk_s, state, hparams, evaluate=not bad)
                if chunk == start_chunk:
                    row["compile_s"], row["trace_s"] = timings
                row["wall_s"] = self.wall_offset + time.perf_counter() - self.start
                row = json_safe(row)
                rows.append(row)
                self.files.write(row, state, checkpoint=not bad)
                if bad:
                    self.diverged = {
                        "chunk": chunk + 1,
                        "iteration": row["iteration"],
                        "env_steps": row["env_steps"],
                        "quantities": bad,
                        "last_checkpoint": self.files.last_checkpoint(),
                    }
                    status = "diverged"
                    break
                progress.update(row)
                stopped_early = max_chunks is not None and chunk + 1 - start_chunk >= max_chunks
                if (stop.signum is not None or stopped_early) and chunk + 1 < self.num_chunks:
                    status = "interrupted"
                    break
        return status, stop.signum


def _summary(rows: list[dict], status: str, run_dir: Path, compile_s: float) -> dict[str, Any]:
    evals = [r for r in rows if r.get("eval/return") is not None]
    last = rows[-1] if rows else {}
    best = max(evals, key=lambda r: r["eval/return"]) if evals else {}
    return {
        "status": status,
        "run_dir": str(run_dir),
        "chunks": last.get("chunk", 0),
        "env_steps": last.get("env_steps", 0),
        "wall_s": last.get("wall_s", 0.0),
        "compile_s": compile_s,
        "final_eval_return": evals[-1]["eval/return"] if evals else None,
        "final_eval_primary_return": evals[-1]["eval/primary_return"] if evals else None,
        "best_eval_return": best.get("eval/return"),
        "best_eval_env_steps": best.get("env_steps"),
    }
