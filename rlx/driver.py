"""The driver: the only host code. Chunks of jitted scans, logging, progress, checkpoints, eval.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (one row per chunk),
TensorBoard event files under ``tb/``, ``checkpoints/`` and, at the end, ``summary.json``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from rlx import config as config_lib
from rlx import envs, ppo, runtime, sharding
from rlx.checkpoint import Checkpointer
from rlx.progress import Progress
from rlx.rewards import spec as reward_spec

# Keys of metrics.jsonl rows that measure time; everything else is reproducible exactly.
# Metrics that are a current value, not a rate: a chunk's row keeps the last iteration's.
LAST_VALUE_PREFIXES = ("phi/", "weights/", "meta/gamma")
TIMING_KEYS = ("wall_s", "train/steps_per_s", "chunk_s", "eval_s", "compile_s", "trace_s")


def enable_compilation_cache(path: str) -> None:
    """Turns on JAX's persistent compilation cache at ``path`` ('' leaves it off)."""
    if path:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))


def build(
    config: config_lib.Config, total_iterations: int | None = None, meta_grad_steps: int = 0
) -> tuple[ppo.PPO, ppo.Hparams]:
    """The learner and its Hparams for a resolved config (``total_iterations``: the PPO
    iterations its learning rate anneals over, default the config's)."""
    env = envs.make(
        config.env.name,
        reset_mode=config.env.reset_mode,
        randomize=config.env.randomization(),
        **config.env.params,
    )
    reward_fn, reward_params = reward_spec.build(config.reward, env)
    static = ppo.PPOStatic(
        num_envs=config.train.num_envs,
        unroll_length=config.train.unroll_length,
        num_minibatches=config.train.num_minibatches,
        num_epochs=config.train.num_epochs,
        total_iterations=total_iterations or config.iterations,
        policy_hidden=config.network.policy_hidden,
        value_hidden=config.network.value_hidden,
        activation=config.network.activation,
        init_log_std=config.network.init_log_std,
        normalize_observations=config.train.normalize_observations,
        normalize_advantages=config.train.normalize_advantages,
        anneal_learning_rate=config.train.anneal_learning_rate,
        num_eval_envs=config.eval.num_envs,
        meta_grad_steps=meta_grad_steps,
    )
    hparams = ppo.make_hparams(reward_params, **vars(config.ppo))
    return ppo.make_ppo(static, env, reward_fn), hparams


def summarize_chunk(metrics: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Host-side reduction of a chunk's per-iteration metrics ([iterations] arrays).

    Episode statistics are totals over the episodes that ended in the chunk divided by their
    count (None when none ended); losses are means over iterations.
    """
    episodes = float(np.sum(metrics["episode_total/episodes"]))
    names = {"return": "train/return", "primary_return": "train/primary_return"}
    names["length"] = "train/episode_length"
    row: dict[str, float | None] = {"train/episodes": episodes}
    for key, values in metrics.items():
        if key.startswith("episode_total/"):
            name = key.removeprefix("episode_total/")
            if name == "episodes":
                continue
            total = float(np.sum(values))
            row[names.get(name, name)] = total / episodes if episodes else None
        elif key == "train/learning_rate" or key.startswith(LAST_VALUE_PREFIXES):
            row[key] = float(values[-1])
        else:
            row[key] = float(np.mean(values))
    return row


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


class Program(NamedTuple):
    """What the driver runs: pure functions of a state pytree and traced hparams.

    init: key -> state; chunk: (state, hparams, num_iterations) -> (state, metrics stacked over
    iterations); evaluate: (state, hparams, key) -> dict of [] values; shardings: (state, mesh)
    -> shardings of the state; steps_per_iteration: env steps one iteration takes.
    """

    init: Callable[[jax.Array], Any]
    chunk: Callable[..., Any]
    evaluate: Callable[..., dict]
    hparams: Any
    iterations: int
    steps_per_iteration: int
    shardings: Callable[[Any, Any], Any]


def ppo_program(config: config_lib.Config) -> Program:
    """``rlx train``: PPO on the config's env and reward."""
    agent, hparams = build(config)
    return Program(
        init=lambda key: agent.init(key, hparams.reward),
        chunk=agent.train_chunk,
        evaluate=agent.evaluate,
        hparams=hparams,
        iterations=config.iterations,
        steps_per_iteration=agent.static.batch_size,
        shardings=sharding.state_shardings,
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
    resumable run. Returns the summary that is also written to ``summary.json``.
    """
    return run(
        ppo_program,
        config,
        run_dir,
        resume=resume,
        show_progress=show_progress,
        max_chunks=max_chunks,
    )


def run(
    make_program: Callable[[config_lib.Config], Program],
    config: config_lib.Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    max_chunks: int | None = None,
) -> dict[str, Any]:
    """Runs ``make_program(config)`` chunk by chunk into ``run_dir`` (see ``train``)."""
    run_dir = Path(run_dir)
    runtime.configure()
    mesh = sharding.make_mesh()
    if config.train.num_envs % mesh.size:
        raise config_lib.ConfigError(
            f"key 'train.num_envs': {config.train.num_envs} must be a multiple of the "
            f"{mesh.size} local devices (the env batch is split evenly over them)"
        )
    enable_compilation_cache(config.run.compilation_cache)
    devices = f"{mesh.size} x {mesh.devices.flat[0].device_kind}"
    if show_progress:
        print(f"[rlx] run directory: {run_dir}  devices: {devices}", flush=True)
    program = make_program(config)
    hparams = program.hparams
    chunk_iterations = config.run.chunk_iterations
    num_chunks = program.iterations // chunk_iterations
    steps_per_chunk = chunk_iterations * program.steps_per_iteration
    metrics_path = run_dir / "metrics.jsonl"

    init_key = jax.random.key(config.train.seed)
    init_fn = jax.jit(program.init)
    if not resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(f"run directory {run_dir} exists and is not empty")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config_lib.dump(config))
    checkpointer = None
    if config.run.checkpoint or resume:
        checkpointer = Checkpointer(run_dir / "checkpoints", config.run.max_checkpoints)
    if resume:
        abstract = jax.eval_shape(init_fn, init_key)
        state, meta = checkpointer.restore(abstract)
        start_chunk, wall_offset = int(meta["chunk"]), float(meta["wall_s"])
        rows = [r for r in _read_rows(metrics_path) if r["chunk"] <= start_chunk]
        _write_rows(metrics_path, rows)  # Drop rows written after the last checkpoint.
    else:
        state = init_fn(init_key)
        start_chunk, wall_offset, rows = 0, 0.0, []

    writer = None
    if config.run.tensorboard:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))

    # The env batch axis is split over all local devices; the rest is replicated.
    state_shardings = program.shardings(state, mesh)
    state = jax.device_put(state, state_shardings)
    hparams = jax.device_put(hparams, sharding.replicated(mesh))
    start = time.perf_counter()
    chunk_fn = jax.jit(
        functools.partial(program.chunk, num_iterations=chunk_iterations),
        donate_argnums=0,
        out_shardings=(state_shardings, sharding.replicated(mesh)),
    )
    lowered = chunk_fn.lower(state, hparams)
    trace_s = time.perf_counter() - start  # Python tracing and lowering to StableHLO
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start  # tracing + XLA compilation
    eval_fn = jax.jit(program.evaluate)
    eval_key = jax.random.key(config.eval.seed)
    stop = _StopFlag()
    status = "completed"
    progress = Progress(
        total_steps=num_chunks * steps_per_chunk,
        done_steps=start_chunk * steps_per_chunk,
        enabled=show_progress,
    )
    with stop.installed(), progress:
        for chunk in range(start_chunk, num_chunks):
            chunk_start = time.perf_counter()
            state, metrics = compiled(state, hparams)
            metrics = jax.device_get(metrics)
            chunk_s = time.perf_counter() - chunk_start
            row = {
                "chunk": chunk + 1,
                "iteration": (chunk + 1) * chunk_iterations,
                "env_steps": (chunk + 1) * steps_per_chunk,
            }
            row |= summarize_chunk(metrics)
            row["train/steps_per_s"] = steps_per_chunk / chunk_s
            row["chunk_s"] = chunk_s
            if (chunk + 1) % config.eval.every_chunks == 0 or chunk + 1 == num_chunks:
                eval_start = time.perf_counter()
                row |= {
                    k: float(v)
                    for k, v in jax.device_get(eval_fn(state, hparams, eval_key)).items()
                }
                row["eval_s"] = time.perf_counter() - eval_start
            if chunk == start_chunk:
                row["compile_s"], row["trace_s"] = compile_s, trace_s
            row["wall_s"] = wall_offset + time.perf_counter() - start
            rows.append(row)
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if writer is not None:
                for key, value in row.items():
                    if value is not None and key not in ("chunk", "iteration", "env_steps"):
                        writer.add_scalar(key, value, row["env_steps"])
                writer.flush()
            if checkpointer is not None:
                meta = {
                    "chunk": chunk + 1,
                    "wall_s": row["wall_s"],
                    "config": config_lib.dump(config),
                }
                checkpointer.save(chunk + 1, state, meta)
            progress.update(row)
            stopped_early = max_chunks is not None and chunk + 1 - start_chunk >= max_chunks
            if (stop.signum is not None or stopped_early) and chunk + 1 < num_chunks:
                status = "interrupted"
                break
    if writer is not None:
        writer.close()
    if checkpointer is not None:
        checkpointer.close()
    summary = _summary(rows, status, run_dir, compile_s)
    summary["devices"] = devices
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["signal"] = stop.signum
    return summary


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
