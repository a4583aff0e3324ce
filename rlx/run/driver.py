"""The driver: the only host code. Chunks of jitted scans, logging, progress, checkpoints, eval.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (one row per chunk),
TensorBoard event files under ``tb/``, ``checkpoints/`` and, at the end, ``summary.json``
(``rlx.run.rundir``). Signals are handled over the whole run (``rlx.core.interrupts``): on a first
Ctrl-C or SIGTERM a run stops at a chunk boundary and writes its summary; a second one ends the
process at once (``rlx.core.watchdog``), and the run resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.core import interrupts, runtime, sharding, watchdog
from rlx.core.types import PyTree
from rlx.run import rundir
from rlx.run.files import TIMING_KEYS, RunFiles  # noqa: F401 (TIMING_KEYS: re-exported)
from rlx.run.progress import Progress

# Metrics that are a current value, not a rate: a chunk's row keeps the last iteration's.
LAST_VALUE_PREFIXES = ("phi/", "weights/", "meta/gamma", "schedule/", "constraint/")


def enable_compilation_cache(path: str) -> None:
    """Turns on JAX's persistent compilation cache at ``path`` ('' leaves it off)."""
    if path:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))


# Flags of the numerical guard computed inside the step (1.0: fine); not written to the rows.
GUARD_PREFIX = "guard/"
# Metrics that are non-finite by design: a population's fitness before any member has one
# (NaN mean, -inf best). They are written as null, never counted as divergence.
NAN_BY_DESIGN = ("meta/fitness_mean", "meta/fitness_best")
# ... and a constraint's statistic before any episode has ended (rlx.rewards.constraints)
NAN_BY_DESIGN_SUFFIXES = ("/value", "/violation")
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


# The order in which non-finite quantities cause one another: what the env reports, its
# weighting, the returns, the losses and grads, the params, then everything else. The first
# bad one in this order is the likely cause.
_CAUSAL_ORDER = ("obs", "terms/", "reward/", "train/", "meta/", "phi/", "loss/", "params")


def _cause_rank(name: str) -> int:
    ranks = [i for i, prefix in enumerate(_CAUSAL_ORDER) if name.startswith(prefix)]
    return ranks[0] if ranks else len(_CAUSAL_ORDER)


def nonfinite_quantities(metrics: dict[str, np.ndarray]) -> list[str]:
    """The quantities of a chunk's metrics that went non-finite (or whose guard flag fell), by
    their row names (``terms/alive``, ``loss/value``, ``params``, ...), likely cause first;
    empty when all is well."""
    bad = []
    for key, values in metrics.items():
        if key.startswith(GUARD_PREFIX):
            if float(np.min(values)) < 1.0:
                name = key.removeprefix(GUARD_PREFIX).removesuffix("_finite")
                bad.append(_EPISODE_NAMES.get(name, name))
        elif _nan_by_design(key):
            continue
        elif not np.all(np.isfinite(values)):
            name = key.removeprefix("episode_total/")
            bad.append(_EPISODE_NAMES.get(name, name))
    return sorted(dict.fromkeys(bad), key=_cause_rank)  # each once, likely cause first


def _nan_by_design(key: str) -> bool:
    return key in NAN_BY_DESIGN or (
        key.startswith("constraint/") and key.endswith(NAN_BY_DESIGN_SUFFIXES)
    )


def json_safe(row: dict) -> dict:
    """``row`` with non-finite numbers written as None and listed under ``nonfinite``
    (``metrics.jsonl`` and ``summary.json`` stay valid JSON)."""
    bad = [k for k, v in row.items() if isinstance(v, float) and not np.isfinite(v)]
    if not bad:
        return row
    return {**{k: None if k in bad else v for k, v in row.items()}, "nonfinite": bad}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run goes: ``resume`` an existing run directory; ``show_progress``; stop after
    ``max_chunks`` chunks in this call (as an interrupt would, leaving a resumable run); on
    resume accept an edited config.yaml (``allow_config_change``, recorded)."""

    resume: bool = False
    show_progress: bool = True
    max_chunks: int | None = None
    allow_config_change: bool = False


# (run directory, resume, allow_config_change) -> the run's files
OpenFiles = Callable[[Path, bool, bool], RunFiles]
# (state, hparams, member or None) -> (TrainState, ppo.Hparams, member index or None): the
# learner that eval, export and videos use (a population's best member when None)
Learner = Callable[[PyTree, PyTree, PyTree], tuple[PyTree, PyTree, PyTree]]


@dataclasses.dataclass(frozen=True)
class Program:
    """What the driver runs: pure functions of a state pytree and traced hparams, and what the
    host needs around them.

    init: key -> state; chunk: (state, hparams, num_iterations) -> (state, metrics stacked over
    iterations); evaluate: (state, hparams, key) -> dict of [] values (``[stacked]`` values when
    ``stacked``); shardings: (state, mesh) -> shardings of the state; steps_per_iteration: env
    steps one iteration takes (per learner); config: the resolved config the run directory
    records; open_files: the run's files (``rlx.run.files.RunFiles``); learner: the learner a
    state evaluates (``Learner``); agent: the inner PPO; devices_problem: why the program
    cannot be split over that many devices (None: it can); stacked: the number of learners
    stacked on a leading axis of the state, metrics and eval results (0: one, unstacked).
    """

    init: Callable[[jax.Array], PyTree]
    chunk: Callable[..., PyTree]
    evaluate: Callable[..., dict]
    hparams: PyTree
    iterations: int
    steps_per_iteration: int
    shardings: Callable[[PyTree, PyTree], PyTree]
    config: config_lib.Config
    open_files: OpenFiles
    learner: Learner
    agent: PyTree
    devices_problem: Callable[[int], str | None]
    stacked: int = 0
    # whether the program is one learner whose env batch is split over the devices: its env
    # steps then run per device, each resetting its own shard (``_compile``)
    local_env_steps: bool = False
    # (state, hparams, path) -> what rlx.ship.render wrote: eval.video_every_chunks' videos
    # (attached by the caller, rlx.runs)
    video: Callable[..., dict] | None = None

    def unstack(self, tree: PyTree) -> list[PyTree]:
        """Each learner's slice of a tree stacked over learners (``[tree]`` for one)."""
        if not self.stacked:
            return [tree]
        return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(self.stacked)]


def env_batch_problem(config: config_lib.Config, devices: int) -> str | None:
    """Why ``config``'s env batch cannot be split evenly over ``devices`` (None: it can)."""
    if config.train.num_envs % devices:
        return (
            f"key 'train.num_envs': {config.train.num_envs} must be a multiple of the "
            f"{devices} devices (the env batch is split evenly over them)"
        )
    return None


def single_learner(state, hparams, member=None):
    """A PPO run's learner: its state and hparams (``member`` is refused)."""
    if member is not None:
        raise ValueError("--member picks a population member of an rlx meta run")
    return state, hparams, None


def ppo_program(built: build_lib.Built) -> Program:
    """``rlx train``: PPO on the config's env and reward, into a single run directory."""
    agent, hparams, config = built.agent, built.hparams, built.config
    return Program(
        init=lambda key: agent.init(key, hparams.reward_params),
        chunk=agent.train_chunk,
        evaluate=agent.evaluate,
        hparams=hparams,
        iterations=config.iterations,
        steps_per_iteration=agent.static.batch_size,
        shardings=sharding.state_shardings,
        config=config,
        open_files=lambda path, resume, allow: rundir.Run(config, "train", path, resume, allow),
        learner=single_learner,
        agent=agent,
        devices_problem=lambda devices: env_batch_problem(config, devices),
        local_env_steps=True,
    )


def _compile(program: Program, state, hparams, mesh, chunk_iterations: int):
    """(compiled chunk, trace seconds, trace + compile seconds): the chunk jitted with the
    state's buffers donated and its shardings kept."""
    start = time.perf_counter()
    chunk_fn = jax.jit(
        functools.partial(program.chunk, num_iterations=chunk_iterations),
        donate_argnums=0,
        out_shardings=(program.shardings(state, mesh), sharding.replicated(mesh)),
    )
    # a single learner's env batch split over several devices: traced with the mesh set, its
    # env steps run per device (envs.wrappers.VmapWrapper), with no collective per step
    local = program.local_env_steps and mesh.size > 1
    with jax.set_mesh(mesh) if local else contextlib.nullcontext():
        lowered = chunk_fn.lower(state, hparams)
    trace_s = time.perf_counter() - start  # Python tracing and lowering to StableHLO
    compiled = lowered.compile()
    return compiled, trace_s, time.perf_counter() - start  # tracing + XLA compilation


def _mesh_for(program: Program):
    mesh = sharding.make_mesh()
    problem = program.devices_problem(mesh.size)
    if problem is not None:
        raise config_lib.ConfigError(problem)
    return mesh


def run(program: Program, run_dir: str | Path, options: RunOptions = RunOptions()) -> dict:
    """Runs ``program`` chunk by chunk into ``run_dir`` (new, or existing with
    ``options.resume``); returns the summary also written to ``summary.json``.

    Raises, before anything is written: ``ConfigError`` for a program the devices cannot split,
    ``RunDirError`` for a directory that cannot be created or written, or is in use by another
    run; ``interrupts.Interrupted`` when a signal came before the run started. On resume:
    ``ConfigChangedError`` when config.yaml was edited since the checkpoint (unless
    ``options.allow_config_change``, which records the change), and the checkpoint errors of
    ``Checkpointer.restore``.
    """
    run_dir, config = Path(run_dir), program.config
    with interrupts.handling() as stop:
        if stop.signum is not None:
            raise interrupts.Interrupted(stop.signum)
        problem = rundir.problem_everywhere(run_dir, options.resume)  # all processes, or none
        if problem is not None:
            raise rundir.RunDirError(problem)
        show_progress = options.show_progress and runtime.is_primary()
        runtime.configure()
        mesh = _mesh_for(program)
        if config.run.wandb.mode != "off":
            import importlib.util

            if importlib.util.find_spec("wandb") is None:
                raise config.source.error(
                    "run.wandb.mode",
                    "W&B logging needs wandb: pip install -c constraints.txt '.[wandb]'",
                )
        enable_compilation_cache(config.run.compilation_cache)
        if show_progress:
            devices = f"{mesh.size} x {mesh.devices.flat[0].device_kind}"
            print(f"[rlx] run directory: {run_dir}  devices: {devices}", flush=True)
        files = program.open_files(run_dir, options.resume, options.allow_config_change)
        where = f"{run_dir} keeps its last checkpoint (go on with --resume {run_dir})"
        try:
            with watchdog.arm(config.run.stall_timeout_s, where):
                return _run(program, files, mesh, stop, options, show_progress)
        finally:
            files.close()


def _start(program: Program, files: RunFiles, resume: bool, mesh):
    """(state, start chunk, wall offset, rows): from the newest valid checkpoint on a resume
    that has one, else a fresh state. A checkpoint is read straight into this run's shardings
    (orbax reshards one written on another device or process count); with several processes
    the fresh state is made in place too, each process holding its shards."""
    init_fn = jax.jit(program.init)
    init_key = jax.random.key(program.config.train.seed)
    abstract = jax.eval_shape(init_fn, init_key)
    shardings = program.shardings(abstract, mesh)
    if jax.process_count() > 1:
        init_fn = jax.jit(program.init, out_shardings=shardings)
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    with watchdog.phase("checkpoint"):
        restored = files.restore(abstract) if resume else None
    if restored is None:
        if resume:
            print(f"[rlx] no checkpoint in {files.dir}: starting it from scratch", flush=True)
        with watchdog.phase("compile", timed=False):
            init_fn = init_fn.lower(init_key).compile()
        with watchdog.phase("init"):
            interrupts.fault("init")
            state = jax.block_until_ready(init_fn(init_key))
        return state, 0, 0.0, []
    return restored


def _run(program, files, mesh, stop, options: RunOptions, show_progress) -> dict[str, Any]:
    config = program.config
    state, start_chunk, wall_offset, rows = _start(program, files, options.resume, mesh)
    files.open_loggers(rows)
    # The env batch axis is split over all devices; the rest is replicated.
    state = jax.device_put(state, program.shardings(state, mesh))
    hparams = program.hparams
    if jax.process_count() > 1:
        hparams = jax.device_get(hparams)  # host values, the same in every process
        if program.video is not None:
            print("[rlx] note: no training videos in a multi-process run", flush=True)
            program = dataclasses.replace(program, video=None)
    hparams = jax.device_put(hparams, sharding.replicated(mesh))
    start, compile_s, status = time.perf_counter(), None, "interrupted"
    loop = None
    try:
        with watchdog.phase("compile", timed=False):
            interrupts.fault("compile")
            compiled, trace_s, compile_s = _compile(
                program, state, hparams, mesh, config.run.chunk_iterations
            )
            eval_key = jax.random.key(config.eval.seed)
            evaluate = jax.jit(program.evaluate, out_shardings=sharding.replicated(mesh))
            evaluate = evaluate.lower(state, hparams, eval_key).compile()
        loop = _Loop(program, files, compiled, evaluate, start, wall_offset)
        with interrupts.abortable():
            status = loop.run(
                state,
                hparams,
                start_chunk,
                rows,
                (compile_s, trace_s),
                stop,
                show_progress,
                options.max_chunks,
            )
    except interrupts.Interrupted:
        status = "interrupted"
    summary = _summary(rows, status, files.dir, start_chunk, compile_s)
    summary["devices"] = f"{mesh.size} x {mesh.devices.flat[0].device_kind}"
    summary |= files.finish(
        lambda learner_rows, path: json_safe(
            _summary(learner_rows, status, path, start_chunk, compile_s)
        )
    )
    if loop is not None and loop.diverged is not None:
        summary["diverged"] = loop.diverged
    summary = json_safe(summary)
    if runtime.is_primary():
        text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
        (files.dir / "summary.json").write_text(text)
    summary["signal"] = stop.signum
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

    def _due(self, chunk: int, every: int) -> bool:
        return (chunk + 1) % every == 0 or chunk + 1 == self.num_chunks

    def rows(self, chunk: int, learner_metrics: list, chunk_s: float, state, hparams, evaluate):
        """(the run's row: the mean of its learners' rows, each learner's row)."""
        head = {
            "chunk": chunk + 1,
            "iteration": (chunk + 1) * self.chunk_iterations,
            "env_steps": (chunk + 1) * self.steps_per_chunk,
        }
        learners = [head | summarize_chunk(m) for m in learner_metrics]
        eval_s = None
        if evaluate and self._due(chunk, self.every):
            eval_start = time.perf_counter()
            with watchdog.phase("eval"):
                interrupts.fault("eval")
                results = jax.device_get(self.eval_fn(state, hparams, self.eval_key))
            for learner, values in zip(learners, self.program.unstack(results), strict=True):
                learner |= {k: float(v) for k, v in values.items()}
            eval_s = time.perf_counter() - eval_start
        row = _mean_row(learners)
        every = self.program.config.eval.video_every_chunks
        if evaluate and self.program.video is not None and self._due(chunk, every):
            video_start = time.perf_counter()
            with watchdog.phase("video", timed=False):
                self._video(state, hparams, head["env_steps"])
            row["video_s"] = time.perf_counter() - video_start
        row["train/steps_per_s"] = self.steps_per_chunk / chunk_s
        row["chunk_s"] = chunk_s
        if eval_s is not None:
            row["eval_s"] = eval_s
        return row, learners

    def _video(self, state, hparams, env_steps: int) -> None:
        """videos/step-<env steps>.mp4 and the same as a TensorBoard video (an animated GIF).
        A video that fails is one warning line and no more videos: training goes on."""
        import sys

        directory = self.files.dir / "videos"
        try:
            directory.mkdir(exist_ok=True)
            written = self.program.video(state, hparams, directory / f"step-{env_steps}.mp4")
        except Exception as error:  # noqa: BLE001 (a video never stops training)
            reason = " ".join(str(error).split())[:200]
            print(
                f"[rlx] warning: the video at {env_steps} env steps failed "
                f"({type(error).__name__}: {reason}); no more videos in this run",
                file=sys.stderr,
                flush=True,
            )
            self.program = dataclasses.replace(self.program, video=None)
            return
        self.files.add_video("video", written["frames"], env_steps, written["fps"], written["file"])

    def run(self, state, hparams, start_chunk, rows, timings, stop, show_progress, max_chunks):
        """Chunks from ``start_chunk`` on, appending to ``rows``, until done, diverged, the
        ``stop`` flag is set (by a signal) or ``max_chunks`` ran: the status."""
        status = "completed"
        progress = Progress(
            total_steps=self.num_chunks * self.steps_per_chunk,
            done_steps=start_chunk * self.steps_per_chunk,
            enabled=show_progress,
        )
        with progress:
            for chunk in range(start_chunk, self.num_chunks):
                # also a signal that came during compile; any process's stops them all
                if runtime.any_process(stop.signum is not None):
                    status = "interrupted"
                    break
                chunk_start = time.perf_counter()
                with watchdog.phase("chunk"):
                    state, metrics = self.compiled(state, hparams)
                    interrupts.fault("chunk")
                    metrics = jax.device_get(metrics)
                bad = nonfinite_quantities(metrics)
                chunk_s = time.perf_counter() - chunk_start
                learner_metrics = self.program.unstack(metrics)
                row, learners = self.rows(chunk, learner_metrics, chunk_s, state, hparams, not bad)
                if chunk == start_chunk:
                    row["compile_s"], row["trace_s"] = timings
                row["wall_s"] = self.wall_offset + time.perf_counter() - self.start
                row = json_safe(row)
                rows.append(row)
                with watchdog.phase("checkpoint"):
                    self.files.write(row, [json_safe(r) for r in learners], state, not bad)
                if bad:
                    self._diverge(row, bad, learner_metrics)
                    status = "diverged"
                    break
                progress.update(row)
                stopped_early = max_chunks is not None and chunk + 1 - start_chunk >= max_chunks
                if stopped_early and chunk + 1 < self.num_chunks:
                    status = "interrupted"
                    break
        return status

    def _diverge(self, row: dict, bad: list[str], learner_metrics: list) -> None:
        learners = [i for i, m in enumerate(learner_metrics) if nonfinite_quantities(m)]
        self.diverged = {
            "chunk": row["chunk"],
            "iteration": row["iteration"],
            "env_steps": row["env_steps"],
            "quantities": bad,
            "last_checkpoint": self.files.last_checkpoint(),
        } | self.files.divergence(learners)


def _mean_row(rows: list[dict]) -> dict:
    """Each key's mean over the learners' rows (None where no learner has a value); the
    chunk, iteration and env steps as they are. One learner's row is itself."""
    out = {}
    for key in dict.fromkeys(k for m in rows for k in m):
        values = [m[key] for m in rows if m.get(key) is not None]
        if key in ("chunk", "iteration", "env_steps"):
            out[key] = rows[0][key]
        else:
            out[key] = float(np.mean(values)) if values else None
    return out


def _summary(rows, status, run_dir, start_chunk, compile_s) -> dict[str, Any]:
    """The run's summary. ``compile_s`` is the first process's compile time, and
    ``resume_compile_s`` each resumed process's (this one's even when it ran no chunk)."""
    evals = [r for r in rows if r.get("eval/return") is not None]
    last = rows[-1] if rows else {}
    best = max(evals, key=lambda r: r["eval/return"]) if evals else {}
    compiles = [r["compile_s"] for r in rows if r.get("compile_s") is not None]
    if compile_s is not None and not any(r["chunk"] == start_chunk + 1 for r in rows):
        compiles.append(compile_s)  # this process compiled but finished no chunk
    summary = {
        "status": status,
        "run_dir": str(run_dir),
        "chunks": last.get("chunk", 0),
        "env_steps": last.get("env_steps", 0),
        "wall_s": last.get("wall_s", 0.0),
        "compile_s": compiles[0] if compiles else None,
        "final_eval_return": evals[-1]["eval/return"] if evals else None,
        "final_eval_primary_return": evals[-1]["eval/primary_return"] if evals else None,
        "best_eval_return": best.get("eval/return"),
        "best_eval_env_steps": best.get("env_steps"),
    }
    if len(compiles) > 1:
        summary["resume_compile_s"] = compiles[1:]
    return summary
