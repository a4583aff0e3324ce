"""Cost of a meta-iteration against a plain PPO iteration on the same batch, in one process.

For each config, the plain PPO chunk (``--iterations`` train iterations) and the meta chunk of
each method (``--iterations`` meta-iterations with ``meta.inner_iterations=1``: one rollout and
one PPO update each, plus the outer step and the primary critic's update) are compiled, then
timed alternately ``--repeats`` times; the ratio of medians is the meta-iteration's cost in
plain iterations. The issue's aim: one_step <= 2x.

  python scripts/bench_meta.py [--configs configs/meta/cartpole_anti_pd.yaml ...]
      [--methods one_step implicit unrolled] [--out docs/bench/bench_meta.json] [overrides ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rlx.config import build as build_lib  # noqa: E402
from rlx.core import runtime  # noqa: E402
from rlx.run import driver  # noqa: E402


def timed(fn, state, hps, repeats_out: list) -> object:
    start = time.perf_counter()
    state, metrics = fn(state, hps)
    jax.block_until_ready((state, metrics))
    repeats_out.append(time.perf_counter() - start)
    return state


def bench(path: str, methods: list[str], iterations: int, repeats: int, overrides: list[str]):
    programs = {}
    config = build_lib.load(path, [*overrides, "meta.inner_iterations=1"])
    built = build_lib.build(config)
    agent, hps = built.agent, built.hparams
    chunk = jax.jit(functools.partial(agent.train_chunk, num_iterations=iterations))
    programs["ppo"] = (chunk, agent.init(jax.random.key(0), hps.reward_params), hps)
    for method in methods:
        cfg = build_lib.load(path, [*overrides, "meta.inner_iterations=1", f"meta.method={method}"])
        built = build_lib.build(cfg, meta=True)
        meta, mhps = built.meta, built.meta_hps
        chunk = jax.jit(functools.partial(meta.chunk, num_iterations=iterations))
        programs[method] = (chunk, jax.jit(meta.init)(jax.random.key(0), mhps), mhps)
    times = {name: [] for name in programs}
    compile_s = {}
    states = {}
    for name, (fn, state, h) in programs.items():
        start = time.perf_counter()
        states[name] = fn(state, h)[0]  # compile + one warm-up chunk
        jax.block_until_ready(states[name])
        compile_s[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, (fn, _, h) in programs.items():
            states[name] = timed(fn, states[name], h, times[name])
    per_iteration = {name: float(np.median(t)) / iterations for name, t in times.items()}
    return {
        "config": path,
        "batch": agent.static.batch_size,
        "iterations_per_timing": iterations,
        "seconds_per_iteration": per_iteration,
        "ratio_to_ppo": {n: per_iteration[n] / per_iteration["ppo"] for n in methods},
        "first_chunk_s": compile_s,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["configs/meta/cartpole_anti_pd.yaml", "configs/meta/gridworld_trap.yaml"],
    )
    parser.add_argument("--methods", nargs="+", default=["one_step", "implicit", "unrolled"])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/bench/bench_meta.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    runtime.configure()
    driver.enable_compilation_cache("~/.cache/rlx/jax")
    results = []
    for path in args.configs:
        result = bench(path, args.methods, args.iterations, args.repeats, args.overrides)
        results.append(result)
        ratios = "  ".join(f"{n} {r:.2f}x" for n, r in result["ratio_to_ppo"].items())
        ppo_ms = 1e3 * result["seconds_per_iteration"]["ppo"]
        print(f"[bench_meta] {path}: PPO iteration {ppo_ms:.1f} ms; meta-iteration {ratios}")
    out = {
        "command": "python " + " ".join(["scripts/bench_meta.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {jax.devices()[0].device_kind} x {jax.device_count()}",
        "jax": jax.__version__,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
