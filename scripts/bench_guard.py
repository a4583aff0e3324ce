"""What the numerical guard costs: guard-on and guard-off train chunks alternating in one process.

  python scripts/bench_guard.py [--pairs 9] [--only cartpole humanoid]
      [--out docs/bench/bench_guard.json]

For each env (``configs/cartpole.yaml`` and ``configs/humanoid_cpu.yaml``, their shipped sizes),
two programs are built from the same config, differing only in ``PPOStatic.guard``: on, the
train step also reduces obs, terms, rewards and params to ``guard/*`` finite flags and the
host checks every metric of the chunk (``driver.nonfinite_quantities``), as ``rlx train`` does;
off, neither. Both are compiled first (not timed), then run chunk by chunk, on/off alternating
(the order within each pair alternates too), each from its own state, timed from the call to
the metrics on the host. Reports per env the median chunk time of each side, their ratio, and
the spread of the per-pair ratios (min, quartiles, max). The aim is a ratio below 1.02.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from rlx.config import build as build_lib
from rlx.core import runtime
from rlx.learn import ppo
from rlx.run import driver

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {"cartpole": "configs/cartpole.yaml", "humanoid": "configs/humanoid_cpu.yaml"}


def programs(name: str):
    """{'on': (chunk fn, state, hparams), 'off': ...} for the env's shipped config."""
    config = build_lib.load(REPO / CONFIGS[name], ["run.compilation_cache="])
    built = build_lib.build(config)
    out = {}
    for side, guard in (("on", True), ("off", False)):
        static = dataclasses.replace(built.agent.static, guard=guard)
        agent = ppo.make_ppo(static, built.agent.env, built.agent.reward_fn)
        state = jax.jit(functools.partial(agent.init))(
            jax.random.key(config.train.seed), built.hparams.reward_params
        )
        chunk = jax.jit(
            functools.partial(agent.train_chunk, num_iterations=config.run.chunk_iterations),
            donate_argnums=0,
        )
        start = time.perf_counter()
        compiled = chunk.lower(state, built.hparams).compile()
        print(f"[bench_guard] {name} guard {side}: compiled in {time.perf_counter() - start:.1f} s")
        out[side] = [compiled, state, built.hparams]
    return out, config


def timed_chunk(entry, guard: bool) -> float:
    compiled, state, hparams = entry
    start = time.perf_counter()
    state, metrics = compiled(state, hparams)
    metrics = jax.device_get(metrics)
    if guard:
        driver.nonfinite_quantities(metrics)
    elapsed = time.perf_counter() - start
    entry[1] = state
    return elapsed


def measure(name: str, pairs: int) -> dict:
    progs, config = programs(name)
    for side in ("on", "off"):  # one untimed chunk each: first-call costs out of the way
        timed_chunk(progs[side], side == "on")
    times = {"on": [], "off": []}
    for i in range(pairs):
        order = ("on", "off") if i % 2 == 0 else ("off", "on")
        for side in order:
            times[side].append(timed_chunk(progs[side], side == "on"))
    ratios = sorted(a / b for a, b in zip(times["on"], times["off"], strict=True))
    median = {side: statistics.median(t) for side, t in times.items()}
    q = np.quantile(ratios, [0.25, 0.75])
    result = {
        "env": name,
        "config": CONFIGS[name],
        "chunk_iterations": config.run.chunk_iterations,
        "env_steps_per_chunk": config.run.chunk_iterations
        * config.train.num_envs
        * config.train.unroll_length,
        "pairs": pairs,
        "chunk_s_on": times["on"],
        "chunk_s_off": times["off"],
        "median_s_on": median["on"],
        "median_s_off": median["off"],
        "ratio_of_medians": median["on"] / median["off"],
        "pair_ratio_min": ratios[0],
        "pair_ratio_q1": float(q[0]),
        "pair_ratio_median": statistics.median(ratios),
        "pair_ratio_q3": float(q[1]),
        "pair_ratio_max": ratios[-1],
    }
    print(
        f"[bench_guard] {name}: median chunk {median['on']:.4f} s on, {median['off']:.4f} s off:"
        f" ratio {result['ratio_of_medians']:.4f} (pair ratios {ratios[0]:.3f} .. "
        f"{q[0]:.3f} / {result['pair_ratio_median']:.3f} / {q[1]:.3f} .. {ratios[-1]:.3f})",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=9, help="on/off chunk pairs (>= 7)")
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS))
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "bench_guard.json"))
    args = parser.parse_args()
    runtime.configure()
    results = [measure(name, args.pairs) for name in args.only]
    report = {
        "command": "python scripts/bench_guard.py "
        f"--pairs {args.pairs} --only {' '.join(args.only)}",
        "machine": f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"[bench_guard] wrote {args.out}")


if __name__ == "__main__":
    main()
