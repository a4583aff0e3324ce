"""Compile time and raw steps/s of registered envs (no learning), for choosing a model.

For each env and batch size: the cold XLA compile (persistent cache off) of a jitted
``lax.scan`` of ``--steps`` steps of ``VmapWrapper(envs.make(name))`` with uniform random
actions, then env steps/s of that program (median of ``--repeats`` runs).

  python scripts/bench_envs.py reach push --envs 64 256 [--out docs/bench/bench_envs.json]
  python scripts/bench_envs.py brax:halfcheetah --envs 256 \
      --backends spring positional generalized mjx --out docs/bench/bench_envs_halfcheetah.json
  python scripts/bench_envs.py humanoid --envs 128 --impls jax c --out /tmp/impls.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from rlx import envs
from rlx.core import runtime


def measure(name: str, num_envs: int, steps: int, repeats: int, **params) -> dict:
    env = envs.make(name, **params)
    batched = envs.VmapWrapper(env)
    space = env.action_space

    def run(state, key):
        def step(state, k):
            if isinstance(space, envs.Discrete):
                action = jax.random.randint(k, (num_envs,), 0, space.num_actions)
            else:
                action = jax.random.uniform(
                    k, (num_envs, space.size), minval=space.low, maxval=space.high
                )
            return batched.step(state, action), None

        return jax.lax.scan(step, state, jax.random.split(key, steps))[0]

    key = jax.random.key(0)
    state = jax.jit(batched.reset)(jax.random.split(key, num_envs))
    start = time.perf_counter()
    compiled = jax.jit(run).lower(state, key).compile()
    compile_s = time.perf_counter() - start
    state = jax.block_until_ready(compiled(state, key))
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(compiled(state, jax.random.fold_in(key, i)))
        times.append(time.perf_counter() - start)
    return {
        "env": name,
        "params": params,
        "num_envs": num_envs,
        "compile_s": compile_s,
        "steps_per_s": steps * num_envs / float(np.median(times)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/bench/bench_envs.json")
    parser.add_argument(
        "--backends", nargs="+", help="brax:<name> envs: one row per Brax backend (env param)"
    )
    parser.add_argument(
        "--impls", nargs="+", help="MJX envs: one row per physics impl (jax, warp, c; env param)"
    )
    args = parser.parse_args(argv)
    runtime.configure()
    jax.config.update("jax_enable_compilation_cache", False)
    rows = []
    variants = [{"backend": b} for b in args.backends] if args.backends else [{}]
    if args.impls:
        variants = [{"impl": i} for i in args.impls]
    for name in args.names:
        for num_envs, params in ((n, p) for n in args.envs for p in variants):
            rows.append(measure(name, num_envs, args.steps, args.repeats, **params))
            label = " ".join([name, *params.values()])
            print(
                f"{label:>16} {num_envs:>5} envs: compile {rows[-1]['compile_s']:5.1f} s, "
                f"{rows[-1]['steps_per_s']:>10,.0f} steps/s",
                flush=True,
            )
    result = {
        "command": "python " + " ".join(["scripts/bench_envs.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()} ({jax.device_count()} x {jax.devices()[0].device_kind})",
        "jax": jax.__version__,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
