"""The short-horizon diagnosis: does each meta-gradient point where the long run goes?

    python scripts/experiments/meta_diagnosis.py --task cartpole --seeds 8
    python scripts/experiments/meta_diagnosis.py --task halfcheetah --seeds 8 --steps 1000000
    python scripts/experiments/meta_diagnosis.py --task halfcheetah --w0 10 --eps 5

At the task's starting weight w0 of its auxiliary term (CartPole: ``pd_anti`` = 1, harmful;
HalfCheetah: ``reward_ctrl`` = 40, BARFI's 4x; ``--w0`` another, written to
``meta_diagnosis_<task>_w<w0>``):

* **the long-horizon truth**: d(final eval primary return)/dw by central finite differences,
  plain PPO at w0 + eps and w0 - eps on the same seeds (common random numbers), all ``2 x seeds``
  learners vmapped in one program, ``--steps`` env steps each; the final return is the mean of
  the last ``--last-evals`` evaluations; mean over seeds with a 95% bootstrap CI;
* **each method's outer gradient** at w0: the meta-learner run with phi held at w0 (an outer
  step of 1e-9), recording -dL_out/dw (the outer ascent direction) every meta-iteration, over
  the same run length; per setting (method, ``grad_steps``, ``inner_iterations``) its mean in
  each third of the run with a CI over seeds, the share of meta-iterations whose sign agrees
  with the finite difference's, and the primary critic's loss (its quality).

The outer loss uses normalised advantages, so an outer gradient's size is in its own units: the
sign, and how it changes over the run, is what compares. Each arm's result is stored in the JSON
as it finishes and a rerun skips the arms it holds (``--fresh`` starts over). Writes
``docs/experiments/meta_diagnosis_<task>.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]

from rlx.config import build as build_lib  # noqa: E402
from rlx.core import runtime  # noqa: E402
from rlx.core.stats import bootstrap_ci  # noqa: E402
from rlx.meta import gradient  # noqa: E402

TASKS = {
    "cartpole": {
        "config": "configs/meta/cartpole_anti_pd.yaml",
        "term": "pd_anti",
        "w0": 1.0,
        "eps": 0.5,
        "steps": 500_000,
        "overrides": ["eval.every_chunks=5"],
    },
    "halfcheetah": {
        "config": "configs/meta/halfcheetah_ctrl.yaml",
        "term": "reward_ctrl",
        "w0": 40.0,
        "eps": 10.0,
        "steps": 1_000_000,
        "overrides": ["eval.every_chunks=5"],
    },
}
# The settings whose outer gradients are compared: (name, overrides).
SETTINGS = [
    ("one_step, last epoch", ["meta.method=one_step", "meta.grad_steps=4"]),
    ("one_step, all epochs", ["meta.method=one_step", "meta.grad_steps=0"]),
    ("unrolled x2", ["meta.method=unrolled", "meta.inner_iterations=2", "meta.grad_steps=4"]),
    ("implicit x1", ["meta.method=implicit", "meta.inner_iterations=1"]),
    ("implicit x4", ["meta.method=implicit", "meta.inner_iterations=4"]),
    # BMG: one_step's update matched to a target 2 updates further (3 PPO iterations each)
    ("bmg, L=2", ["meta.method=one_step", "meta.grad_steps=4", "meta.bootstrap_steps=2"]),
]


def load(task: dict, steps: int, extra: list[str]):
    overrides = [*task["overrides"], f"train.total_steps={steps}", "run.compilation_cache="]
    return build_lib.load(ROOT / task["config"], [*overrides, *extra])


def stacked_init(init, keys):
    """One seed at a time, then stacked (a jitted vmap of init was seen to wedge: README,
    Known issues)."""
    one = jax.jit(init)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[one(k) for k in keys])


def finite_difference(task: dict, seeds: int, steps: int, last_evals: int) -> dict:
    """Final eval primary return at w0 +- eps per seed, and the central difference."""
    w0, eps, term = task["w0"], task["eps"], task["term"]
    builts = [
        build_lib.build(load(task, steps, ["meta.learn=[]", f"reward.weights.{term}={w}"]))
        for w in (w0 + eps, w0 - eps)
    ]
    config, agent = builts[0].config, builts[0].agent
    hparams = jax.tree.map(lambda *xs: jnp.stack(xs), *([b.hparams for b in builts] * seeds))
    keys = [jax.random.key(s) for s in range(seeds) for _ in (0, 1)]  # the same seed at +-
    states = stacked_init(lambda k: agent.init(k, builts[0].hparams.reward_params), keys)
    per_chunk = config.run.chunk_iterations
    chunk = jax.jit(jax.vmap(functools.partial(agent.train_chunk, num_iterations=per_chunk)))
    evaluate = jax.jit(jax.vmap(agent.evaluate, (0, 0, None)))
    evals, eval_key = [], jax.random.key(config.eval.seed)
    chunks = config.iterations // per_chunk
    for c in range(chunks):
        states, _ = chunk(states, hparams)
        if (c + 1) % config.eval.every_chunks == 0 or c + 1 == chunks:
            result = jax.device_get(evaluate(states, hparams, eval_key))
            evals.append(np.asarray(result["eval/primary_return"]).reshape(seeds, 2).tolist())
            print(f"[diagnosis] finite difference: chunk {c + 1}/{chunks}", flush=True)
    final = np.mean(np.asarray(evals[-last_evals:]), axis=0)  # [seeds, 2]
    grads = (final[:, 0] - final[:, 1]) / (2 * eps)
    return {
        "w0": w0,
        "eps": eps,
        "final_plus": final[:, 0].tolist(),
        "final_minus": final[:, 1].tolist(),
        "grad": grads.tolist(),
        "grad_mean": float(grads.mean()),
        "grad_ci": bootstrap_ci(grads),
        "curves": evals,
    }


def outer_gradients(task: dict, seeds: int, steps: int, overrides: list[str]) -> dict:
    """-dL_out/dw at phi held at w0, every meta-iteration, per seed; and the critic loss."""
    extra = [
        *overrides,
        f"reward.weights.{task['term']}={task['w0']}",  # phi starts (and stays) at w0
        "meta.outer_learning_rate=1e-9",
        f"meta.learn=[combine/{task['term']}]",
    ]
    built = build_lib.build(load(task, steps, extra), meta=True)
    meta, hps, config = built.meta, built.meta_hps, built.config
    term = task["term"]

    def probe(state, _):
        out = meta.outer_gradient(meta, state, hps)
        state, metrics = gradient.outer_step(meta, state, hps, out)
        ascent = -out.d_phi.reward_params["combine"][term]
        return state, {"ascent": ascent, "critic_loss": metrics["meta/critic_loss"]}

    per_chunk = config.run.chunk_iterations
    chunk = jax.jit(jax.vmap(lambda s: jax.lax.scan(probe, s, None, length=per_chunk)))
    states = stacked_init(lambda k: meta.init(k, hps), [jax.random.key(s) for s in range(seeds)])
    ascent, critic = [], []
    chunks = config.meta_iterations // per_chunk
    for c in range(chunks):
        states, metrics = chunk(states)
        metrics = jax.device_get(metrics)
        ascent.append(np.asarray(metrics["ascent"]))  # [seeds, per_chunk]
        critic.append(np.asarray(metrics["critic_loss"]).mean(axis=1))
        if (c + 1) % 10 == 0 or c + 1 == chunks:
            print(f"[diagnosis]   chunk {c + 1}/{chunks}", flush=True)
    series = np.concatenate(ascent, axis=1)  # [seeds, meta-iterations]
    thirds = np.array_split(np.arange(series.shape[1]), 3)
    return {
        "overrides": overrides,
        "env_steps_per_meta_iteration": config.train.num_envs
        * config.train.unroll_length
        * config.meta.ppo_iterations,
        "ascent_per_chunk": series.reshape(seeds, chunks, per_chunk).mean(axis=2).tolist(),
        "ascent_mean_by_third": [float(series[:, t].mean()) for t in thirds],
        "ascent_ci_by_third": [bootstrap_ci(series[:, t].mean(axis=1)) for t in thirds],
        "sign_positive_share": float(np.mean(series > 0)),
        "critic_loss_per_chunk": np.asarray(critic).mean(axis=1).tolist(),
    }


def write_table(out: Path, results: dict, args, task: dict) -> None:
    fd = results["finite_difference"]
    sign = np.sign(fd["grad_mean"])
    lines = [
        f"# Meta-gradient diagnosis: {args.task}",
        "",
        f"`{' && '.join(results.get('commands') or [results['command']])}` ({results['machine']}).",
        "",
        f"Long-horizon truth at w0 = {fd['w0']} (`{task['term']}`): "
        f"d(final eval primary return)/dw = **{fd['grad_mean']:.3g}** "
        f"(95% CI {fd['grad_ci'][0]:.3g} .. {fd['grad_ci'][1]:.3g}; {args.seeds} seeds, central "
        f"difference at +-{fd['eps']}, final = mean of the last {args.last_evals} evals). "
        f"Final returns: {np.mean(fd['final_plus']):.1f} at w0+eps, "
        f"{np.mean(fd['final_minus']):.1f} at w0-eps.",
        "",
        "Outer ascent direction -dL_out/dw at phi = w0 (units of the normalised outer loss), by "
        "thirds of the run, mean over seeds with 95% CI; *agree* is the share of meta-iterations "
        "whose sign matches the finite difference's.",
        "",
        "| setting | first third | middle third | last third | agree | critic loss first -> last |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["settings"].items():
        cells = [
            f"{m:+.3g} ({lo:+.2g} .. {hi:+.2g})"
            for m, (lo, hi) in zip(r["ascent_mean_by_third"], r["ascent_ci_by_third"], strict=True)
        ]
        share = r["sign_positive_share"] if sign > 0 else 1 - r["sign_positive_share"]
        critic = r["critic_loss_per_chunk"]
        lines.append(
            f"| {name} | {' | '.join(cells)} | {share:.0%} | {critic[0]:.3g} -> {critic[-1]:.3g} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def plot(out: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    fd = results["finite_difference"]
    for i, (name, r) in enumerate(results["settings"].items()):
        series = np.asarray(r["ascent_per_chunk"])
        mean = series.mean(axis=0)
        scale = np.max(np.abs(mean)) or 1.0
        axes[0].plot(mean / scale, color=f"C{i}", label=name)
        axes[1].plot(r["critic_loss_per_chunk"], color=f"C{i}", label=name)
    axes[0].axhline(np.sign(fd["grad_mean"]), color="k", ls="--", label="finite-difference sign")
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[0].set_title("outer ascent direction at w0 (each scaled to max 1)")
    axes[0].set_xlabel("chunk")
    axes[1].set_title("primary critic loss")
    axes[1].set_xlabel("chunk")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="cartpole")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, help="env steps per learner (task default)")
    parser.add_argument("--w0", type=float, help="the weight to diagnose at (task default)")
    parser.add_argument("--eps", type=float, help="finite-difference half-step (task default)")
    parser.add_argument("--last-evals", type=int, default=3)
    parser.add_argument("--only", nargs="+", help="setting names to run (default all)")
    parser.add_argument("--out", help="default docs/experiments/meta_diagnosis_<task>.json")
    parser.add_argument("--fresh", action="store_true", help="ignore stored arm results")
    args = parser.parse_args()
    runtime.configure()
    task = dict(TASKS[args.task])
    steps = args.steps or task["steps"]
    name = f"meta_diagnosis_{args.task}"
    if args.w0 is not None:
        task["w0"] = args.w0
        name += f"_w{args.w0:g}"
    if args.eps is not None:
        task["eps"] = args.eps
    out = Path(args.out or ROOT / "docs" / "experiments" / f"{name}.json")
    command = shlex.join(["python", "scripts/experiments/meta_diagnosis.py", *sys.argv[1:]])
    results = {"settings": {}}
    if out.exists() and not args.fresh:
        results = json.loads(out.read_text())
    # Every command that added arms to this file, in order (a rerun adds its own).
    commands = results.get("commands") or ([results["command"]] if "command" in results else [])
    results |= {
        "command": command,
        "commands": [*commands, command] if command not in commands else commands,
        "machine": f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}",
        "seeds": args.seeds,
        "steps": steps,
    }

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")

    if "finite_difference" not in results:
        start = time.perf_counter()
        results["finite_difference"] = finite_difference(task, args.seeds, steps, args.last_evals)
        results["finite_difference"]["wall_s"] = time.perf_counter() - start
        save()
    for name, overrides in SETTINGS:
        if name in results["settings"] or (args.only and name not in args.only):
            continue
        print(f"[diagnosis] {name}", flush=True)
        start = time.perf_counter()
        results["settings"][name] = outer_gradients(task, args.seeds, steps, overrides)
        results["settings"][name]["wall_s"] = time.perf_counter() - start
        save()
    write_table(out, results, args, task)
    plot(out, results)
    print(f"[diagnosis] wrote {out.with_suffix('.md')}", flush=True)


if __name__ == "__main__":
    main()
