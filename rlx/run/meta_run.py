"""``rlx meta``: the meta-learner as a driver program, and the plot of phi over a run."""

from __future__ import annotations

from pathlib import Path

from rlx.config import build as build_lib
from rlx.run import driver, rundir


def meta_program(built: build_lib.Built) -> driver.Program:
    """``rlx meta``: the config's meta-learner (any method, behind ``rlx.meta.Meta``) into a
    single run directory; env steps count per learner."""
    meta, hps = built.meta, built.meta_hps
    config = built.config
    return driver.Program(
        init=lambda key: meta.init(key, hps),
        chunk=meta.chunk,
        evaluate=meta.evaluate,
        hparams=hps,
        iterations=config.meta_iterations,
        steps_per_iteration=meta.agent.static.batch_size * config.meta.ppo_iterations,
        shardings=meta.shardings,
        config=config,
        open_files=lambda path, resume, allow: rundir.Run(config, "meta", path, resume, allow),
        learner=meta.learner,
        agent=meta.agent,
        devices_problem=meta.devices_problem,
        local_env_steps=meta.env_batch_split,
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
