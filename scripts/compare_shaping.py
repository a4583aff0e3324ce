"""Compare reward specs on one env: primary return against env steps, seeds vmapped.

Each spec (a ``reward`` section, listed in a specs YAML file) is loaded strictly on top of a
base config, and all seeds of that spec train in one compiled program (``vmap`` over seeds of
``train_chunk``), with a deterministic evaluation of every seed after each chunk. The measure
is the env's *primary* objective (never the shaped reward, which differs between specs).
Writes ``<out>.json`` (every curve), ``<out>.md`` (a table) and ``<out>.png`` (a plot).

  python scripts/compare_shaping.py --config configs/reach.yaml \
      --specs configs/shaping/reach.yaml --seeds 4 --out docs/bench/compare_shaping_reach
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np
import yaml

from rlx.config import build as build_lib
from rlx.core import runtime


def run_spec(base: Path, reward: dict, overrides: list[str], num_seeds: int) -> dict:
    """Trains ``num_seeds`` seeds of one reward spec; returns its curves and timings."""
    # A whole-section override (JSON is YAML) replaces the base config's reward section.
    config = build_lib.load(base, [*overrides, f"reward={json.dumps(reward)}"])
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    chunk = functools.partial(agent.train_chunk, num_iterations=config.run.chunk_iterations)
    keys = jax.random.split(jax.random.key(config.train.seed), num_seeds)
    init = jax.jit(jax.vmap(agent.init, in_axes=(0, None)))
    train = jax.jit(jax.vmap(chunk, in_axes=(0, None)), donate_argnums=0)
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None, None)))
    eval_key = jax.random.key(config.eval.seed)
    start = time.perf_counter()
    states = init(keys, hparams.reward_params)
    num_chunks = config.iterations // config.run.chunk_iterations
    steps_per_chunk = config.run.chunk_iterations * agent.static.batch_size
    steps, primary, shaped = [], [], []
    compile_s = None
    for index in range(num_chunks):
        states, _ = train(states, hparams)
        out = jax.device_get(evaluate(states, hparams, eval_key))
        if compile_s is None:
            compile_s = time.perf_counter() - start
        steps.append((index + 1) * steps_per_chunk)
        primary.append(np.asarray(out["eval/primary_return"]).tolist())
        shaped.append(np.asarray(out["eval/return"]).tolist())
        print(
            f"  {steps[-1]:>9,} steps  primary {np.mean(primary[-1]):9.3f} "
            f"+- {np.std(primary[-1]):.3f}",
            flush=True,
        )
    return {
        "env_steps": steps,
        "eval_primary_return": primary,  # [chunks][seeds]
        "eval_return": shaped,
        "wall_s": time.perf_counter() - start,
        "compile_s": compile_s,
        "env": config.env.name,
    }


def table(results: dict, seeds: int) -> str:
    lines = [
        "| spec | final primary return (mean +- std) | best seed | mean over training (AUC) "
        "| wall s (incl. compile) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        curve = np.asarray(r["eval_primary_return"])  # [chunks, seeds]
        final = curve[-1]
        lines.append(
            f"| {name} | {final.mean():.3f} +- {final.std():.3f} | {final.max():.3f} | "
            f"{curve.mean():.3f} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        steps = np.asarray(r["env_steps"])
        curve = np.asarray(r["eval_primary_return"])
        mean, std = curve.mean(1), curve.std(1)
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval primary return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/reach.yaml")
    parser.add_argument("--specs", default="configs/shaping/reach.yaml")
    parser.add_argument("--only", nargs="*", help="spec names to run (default: all)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", default="docs/bench/compare_shaping_reach")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides")
    args = parser.parse_args(argv)
    runtime.configure()
    specs = yaml.safe_load(Path(args.specs).read_text())
    if args.only:
        unknown = set(args.only) - set(specs)
        if unknown:
            raise SystemExit(f"unknown spec(s) {sorted(unknown)} (known: {', '.join(specs)})")
        specs = {k: v for k, v in specs.items() if k in args.only}
    results = {}
    for name, reward in specs.items():
        print(f"[compare_shaping] {name}", flush=True)
        results[name] = run_spec(Path(args.config), reward, args.overrides, args.seeds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python scripts/compare_shaping.py "
        + " ".join(
            [f"--config {args.config}", f"--specs {args.specs}", f"--seeds {args.seeds}"]
            + (["--only " + " ".join(args.only)] if args.only else [])
            + [f"--out {args.out}", *args.overrides]
        ),
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"({jax.device_count()} x {jax.devices()[0].device_kind})",
        "jax": jax.__version__,
        "seeds": args.seeds,
        "specs": specs,
    }
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    env = next(iter(results.values()))["env"]
    text = (
        f"# Reward specs compared on `{env}`\n\n"
        f"Eval primary return (deterministic policy, {args.seeds} seeds vmapped per spec); "
        f"measured with `{meta['command']}` on {meta['machine']}, jax {meta['jax']}.\n\n"
        f"{table(results, args.seeds)}\n\n![curves]({out.name}.png)\n"
    )
    out.with_suffix(".md").write_text(text)
    plot(results, out.with_suffix(".png"), f"{env}: eval primary return, {args.seeds} seeds")
    print(text)


if __name__ == "__main__":
    main()
