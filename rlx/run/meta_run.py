"""``rlx meta``: the meta-learner as a driver program, and the plot of phi over a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
from jax.sharding import NamedSharding, PartitionSpec

from rlx import config as config_lib
from rlx import meta as meta_lib
from rlx.config import build as build_lib
from rlx.run import driver, rundir, sharding


def _shardings(state: Any, mesh) -> Any:
    """Gradient meta-learners: the inner run's env batch and the pending batch ([T, B]) split
    over the devices, the rest replicated. A population: its members split over the devices
    (8 members on 4 devices run 2 on each) where their count divides evenly, every leaf with
    the member axis first; the exploit step's gather across members is then a collective."""
    whole = sharding.replicated(mesh)
    if isinstance(state, (meta_lib.PopulationState, meta_lib.HybridState)):
        size = state.fitness.shape[0]
        if mesh.size == 1 or size % mesh.size:
            return jax.tree.map(lambda _: whole, state)
        members = NamedSharding(mesh, PartitionSpec(sharding.BATCH_AXIS))
        per_member = lambda x: getattr(x, "ndim", 0) >= 1 and x.shape[0] == size
        return jax.tree.map(lambda x: members if per_member(x) else whole, state)
    over_envs = NamedSharding(mesh, PartitionSpec(None, sharding.BATCH_AXIS))
    batch = state.batch
    return jax.tree.map(lambda _: whole, state).replace(
        train=sharding.state_shardings(state.train, mesh),
        batch=batch._replace(
            traj=jax.tree.map(lambda _: over_envs, batch.traj),
            next_values=over_envs,
            key=whole,
        ),
    )


def _learner(state, hps):
    """(TrainState, Hparams) of the learner a meta state evaluates: the inner learner under
    phi, a population's best member by fitness."""
    import jax.numpy as jnp

    hparams = hps[0]
    if not hasattr(state, "fitness"):
        return state.train, meta_lib.with_phi(hparams, state.phi)
    best = jnp.argmax(jnp.nan_to_num(state.fitness, nan=-jnp.inf))
    pick = lambda tree: jax.tree.map(lambda x: x[best], tree)
    return pick(state.train), meta_lib.with_phi(hparams, pick(state.phi))


def meta_program(built: build_lib.Built) -> driver.Program:
    """``rlx meta``: the config's meta-learner; env steps count per learner."""
    meta, hps = built.meta, (built.hparams, built.meta_hparams)
    config = built.config
    video = None
    if config.eval.video_every_chunks:
        video = driver._video_hook(meta.agent, config, _learner)
    return driver.Program(
        video=video,
        init=lambda key: meta.init(key, hps),
        chunk=meta.chunk,
        evaluate=meta.evaluate,
        hparams=hps,
        iterations=config.meta_iterations,
        steps_per_iteration=meta.agent.static.batch_size * config.meta.ppo_iterations,
        shardings=_shardings,
        config=config,
        kind="meta",
    )


def plot(run_dir: str | Path) -> Path | None:
    """Writes ``phi.png``: phi's leaves, the effective weights and the inner gamma against env
    steps, from the run's metrics.jsonl (None when there is nothing to plot)."""
    try:
        import matplotlib
    except ImportError:
        print("[rlx] phi.png skipped: matplotlib is not installed (pip install matplotlib)")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = rundir.read_rows(run_dir / "metrics.jsonl")
    if not rows:  # stopped before its first chunk
        return None
    groups = {
        "phi (raw reward params)": [k for k in rows[-1] if k.startswith("phi/")],
        "effective weights": [k for k in rows[-1] if k.startswith("weights/")],
        "inner gamma": [k for k in rows[-1] if k == "meta/gamma"],
        "eval primary return": [k for k in rows[-1] if k == "eval/primary_return"],
    }
    groups = {title: keys for title, keys in groups.items() if keys}
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], groups.items(), strict=True):
        for key in keys:
            points = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
            ax.plot(*zip(*points, strict=True), label=key.split("/", 1)[-1])
        ax.set_title(title)
        ax.set_xlabel("env steps (per learner)")
        if len(keys) > 1 or keys[0].startswith(("phi/", "weights/")):
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = run_dir / "phi.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def train(
    config: config_lib.Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    max_chunks: int | None = None,
    allow_config_change: bool = False,
) -> dict[str, Any]:
    """Meta-trains per ``config`` into ``run_dir`` (like ``driver.train``), then plots phi."""
    program = meta_program(build_lib.build(config, meta=True))
    summary = driver.run(
        program,
        run_dir,
        resume=resume,
        show_progress=show_progress,
        max_chunks=max_chunks,
        allow_config_change=allow_config_change,
    )
    path = plot(run_dir)
    if path is not None and show_progress:
        print(f"[rlx] phi plot: {path}", flush=True)
    return summary
