"""The driver: the only host code. Chunks of jitted scans, logging, progress, checkpoints, eval.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (one row per chunk),
TensorBoard event files under ``tb/``, ``checkpoints/`` and, at the end, ``summary.json``
(``rlx.run.rundir``). Signals are handled over the whole run (``rlx.core.interrupts``): a run stops
at a
chunk boundary, or at once on a second Ctrl-C, and always writes its summary.
"""

from __future__ import annotations

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
from rlx.core import interrupts, runtime
from rlx.run import rundir, sharding
from rlx.run.progress import Progress

# Keys of metrics.jsonl rows that measure time; everything else is reproducible exactly.
# Metrics that are a current value, not a rate: a chunk's row keeps the last iteration's.
LAST_VALUE_PREFIXES = ("phi/", "weights/", "meta/gamma", "schedule/", "constraint/")
TIMING_KEYS = (
    "wall_s",
    "train/steps_per_s",
    "chunk_s",
    "eval_s",
    "compile_s",
    "trace_s",
    "video_s",
)


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
class Program:
    """What the driver runs: pure functions of a state pytree and traced hparams.

    init: key -> state; chunk: (state, hparams, num_iterations) -> (state, metrics stacked over
    iterations); evaluate: (state, hparams, key) -> dict of [] values; shardings: (state, mesh)
    -> shardings of the state; steps_per_iteration: env steps one iteration takes (per learner);
    config: the resolved config the run directory records; members (``rlx.run.members``): the
    learners a stacked state holds (empty: one learner), member_configs their configs.
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
    members: tuple = ()
    member_configs: tuple = ()
    # (state, hparams, path) -> what rlx.ship.render wrote: eval.video_every_chunks' videos
    video: Callable[..., dict] | None = None


def ppo_program(built: build_lib.Built) -> Program:
    """``rlx train``: PPO on the config's env and reward."""
    agent, hparams = built.agent, built.hparams
    video = None
    if built.config.eval.video_every_chunks:
        video = _video_hook(agent, built.config, lambda state, hps: (state, hps))
    return Program(
        video=video,
        init=lambda key: agent.init(key, hparams.reward_params),
        chunk=agent.train_chunk,
        evaluate=agent.evaluate,
        hparams=hparams,
        iterations=built.config.iterations,
        steps_per_iteration=agent.static.batch_size,
        shardings=sharding.state_shardings,
        config=built.config,
    )


def _video_hook(agent, config, policy_of):
    """rlx.ship.render's hook for the driver, or a ConfigError naming eval.video_every_chunks."""
    from rlx.ship import render

    try:
        return render.video_hook(agent, config, policy_of)
    except render.RenderError as error:
        raise config.source.error("eval.video_every_chunks", str(error)) from None


def train(
    config: config_lib.Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    max_chunks: int | None = None,
    allow_config_change: bool = False,
) -> dict[str, Any]:
    """Trains per ``config`` into ``run_dir`` (new, or existing when ``resume``).

    ``max_chunks`` stops after that many chunks in this call (as an interrupt would), leaving a
    resumable run. Returns the summary that is also written to ``summary.json``. Raises
    ``ConfigError`` (before anything is written) for a config the env or reward refuses, and
    ``RunDirError`` for a run directory that cannot be used (see ``run``).
    """
    program = ppo_program(build_lib.build(config))
    return run(
        program,
        run_dir,
        resume=resume,
        show_progress=show_progress,
        max_chunks=max_chunks,
        allow_config_change=allow_config_change,
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
    lowered = chunk_fn.lower(state, hparams)
    trace_s = time.perf_counter() - start  # Python tracing and lowering to StableHLO
    compiled = lowered.compile()
    return compiled, trace_s, time.perf_counter() - start  # tracing + XLA compilation


def _mesh_for(config: config_lib.Config, members: int = 0, population: bool = False):
    mesh = sharding.make_mesh()
    if members and members % mesh.size == 0:
        return mesh  # a members run splits its members over the devices (rlx.run.members)
    if population:
        return mesh  # its members are split, or it is replicated whole (rlx.run.meta_run)
    if config.train.num_envs % mesh.size:
        raise config_lib.ConfigError(
            f"key 'train.num_envs': {config.train.num_envs} must be a multiple of the "
            f"{mesh.size} devices (the env batch is split evenly over them)"
        )
    return mesh


def run(
    program: Program,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    max_chunks: int | None = None,
    allow_config_change: bool = False,
) -> dict[str, Any]:
    """Runs ``program`` chunk by chunk into ``run_dir`` (see ``train``).

    Raises, before anything is written: ``RunDirError`` for a directory that cannot be created
    or written, or is in use by another run; ``interrupts.Interrupted`` when a signal came
    before the run started. On resume: ``ConfigChangedError`` when config.yaml was edited since
    the checkpoint (unless ``allow_config_change``, which records the change), and the
    checkpoint errors of ``Checkpointer.restore``.
    """
    run_dir, config = Path(run_dir), program.config
    with interrupts.handling() as stop:
        if stop.signum is not None:
            raise interrupts.Interrupted(stop.signum)
        problem = rundir.problem_everywhere(run_dir, resume)  # every process stops, or none
        if problem is not None:
            raise rundir.RunDirError(problem)
        show_progress = show_progress and runtime.is_primary()
        runtime.configure()
        population = program.kind == "meta" and config.meta.method == "population"
        mesh = _mesh_for(config, len(program.members), population)
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
        if program.members:
            from rlx.run.members import MembersRun

            files = MembersRun(program, run_dir, resume, allow_config_change)
        else:
            files = rundir.Run(config, program.kind, run_dir, resume, allow_config_change)
        try:
            return _run(program, files, mesh, stop, resume, show_progress, max_chunks)
        finally:
            files.close()


def _start(program: Program, files: rundir.Run, resume: bool, mesh):
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
    restored = files.restore(abstract) if resume else None
    if restored is None:
        if resume:
            print(f"[rlx] no checkpoint in {files.dir}: starting it from scratch", flush=True)
        return init_fn(init_key), 0, 0.0, []
    return restored


def _run(program, files, mesh, stop, resume, show_progress, max_chunks) -> dict[str, Any]:
    config = program.config
    state, start_chunk, wall_offset, rows = _start(program, files, resume, mesh)
    files.open_tensorboard(rows)
    if hasattr(files, "open_wandb"):
        files.open_wandb()
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
        interrupts.fault("compile")
        compiled, trace_s, compile_s = _compile(
            program, state, hparams, mesh, config.run.chunk_iterations
        )
        evaluate = jax.jit(program.evaluate, out_shardings=sharding.replicated(mesh))
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
                max_chunks,
            )
    except interrupts.Interrupted:
        status = "interrupted"
    summary = _summary(rows, status, files.dir, start_chunk, compile_s)
    summary["devices"] = f"{mesh.size} x {mesh.devices.flat[0].device_kind}"
    if program.members:
        summary["members"] = len(program.members)
        summary["sweep"] = files.finish(
            lambda member_rows, path: json_safe(
                _summary(member_rows, status, path, start_chunk, compile_s)
            )
        )
    if loop is not None and loop.diverged is not None:
        summary["diverged"] = loop.diverged
    if getattr(files, "wandb_init_s", None) is not None:
        summary["wandb_init_s"] = files.wandb_init_s
    changes = files.config_change_log()
    if changes:
        summary["config_changes"] = changes
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

    def row(self, chunk: int, metrics, chunk_s: float, state, hparams, evaluate=True):
        """(the chunk's row, the members' rows or None): a members run's row is the mean of
        its members' rows."""
        head = {
            "chunk": chunk + 1,
            "iteration": (chunk + 1) * self.chunk_iterations,
            "env_steps": (chunk + 1) * self.steps_per_chunk,
        }
        count = len(self.program.members)
        if count:
            members = [head | summarize_chunk(_member(metrics, i)) for i in range(count)]
        else:
            row = head | summarize_chunk(metrics)
        due = (chunk + 1) % self.every == 0 or chunk + 1 == self.num_chunks
        eval_s = None
        if evaluate and due:
            eval_start = time.perf_counter()
            results = jax.device_get(self.eval_fn(state, hparams, self.eval_key))
            interrupts.fault("eval")
            if count:
                for i, member in enumerate(members):
                    member |= {k: float(v[i]) for k, v in results.items()}
            else:
                row |= {k: float(v) for k, v in results.items()}
            eval_s = time.perf_counter() - eval_start
        if count:
            row = _mean_row(members)
        every = self.program.config.eval.video_every_chunks
        if (
            evaluate
            and self.program.video is not None
            and ((chunk + 1) % every == 0 or chunk + 1 == self.num_chunks)
        ):
            video_start = time.perf_counter()
            self._video(state, hparams, head["env_steps"])
            row["video_s"] = time.perf_counter() - video_start
        row["train/steps_per_s"] = self.steps_per_chunk / chunk_s
        row["chunk_s"] = chunk_s
        if eval_s is not None:
            row["eval_s"] = eval_s
        return row, (members if count else None)

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
        if hasattr(self.files, "add_video"):
            self.files.add_video(
                "video", written["frames"], env_steps, written["fps"], written["file"]
            )

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
                state, metrics = self.compiled(state, hparams)
                metrics = jax.device_get(metrics)
                interrupts.fault("chunk")
                bad = nonfinite_quantities(metrics)
                chunk_s = time.perf_counter() - chunk_start
                row, members = self.row(chunk, metrics, chunk_s, state, hparams, not bad)
                if chunk == start_chunk:
                    row["compile_s"], row["trace_s"] = timings
                row["wall_s"] = self.wall_offset + time.perf_counter() - self.start
                row = json_safe(row)
                rows.append(row)
                if members is None:
                    self.files.write(row, state, checkpoint=not bad)
                else:  # each member's row carries the run's timings too
                    timing = {k: row[k] for k in TIMING_KEYS if k in row}
                    members = [json_safe(m | timing) for m in members]
                    self.files.write(row, state, checkpoint=not bad, member_rows=members)
                if bad:
                    self.diverged = {
                        "chunk": chunk + 1,
                        "iteration": row["iteration"],
                        "env_steps": row["env_steps"],
                        "quantities": bad,
                        "last_checkpoint": self.files.last_checkpoint(),
                    }
                    if members is not None:
                        self.diverged["members"] = [
                            m.index
                            for m in self.program.members
                            if nonfinite_quantities(_member(metrics, m.index))
                        ]
                    status = "diverged"
                    break
                progress.update(row)
                stopped_early = max_chunks is not None and chunk + 1 - start_chunk >= max_chunks
                if stopped_early and chunk + 1 < self.num_chunks:
                    status = "interrupted"
                    break
        return status


def _member(tree, i: int):
    """Member ``i``'s slice of a stacked pytree."""
    return jax.tree.map(lambda x: x[i], tree)


def _mean_row(members: list[dict]) -> dict:
    """Each key's mean over the members' rows (None where no member has a value)."""
    out = {}
    for key in dict.fromkeys(k for m in members for k in m):
        values = [m[key] for m in members if m.get(key) is not None]
        if key in ("chunk", "iteration", "env_steps"):
            out[key] = members[0][key]
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
