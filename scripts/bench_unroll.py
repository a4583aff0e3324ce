"""Memory and time of a meta-iteration against its horizon K: truncated unrolls (``unrolled``
over K inner updates, rematerialised or not) next to BMG (``one_step`` with
``bootstrap_steps`` = K - 1, which looks K updates ahead at one update's memory).

For each K and variant the meta step (one meta-iteration: K PPO iterations, the outer step and
the primary critic's update) is compiled once; XLA's ``memory_analysis()`` of the compiled
program gives its temporary buffers (the reverse pass's saved values live there), and the
compiled chunk of ``--iterations`` meta-iterations is timed alternately with the plain PPO chunk
of K x ``--iterations`` iterations (median of ``--repeats``), so each time is reported per PPO
iteration, as a ratio to PPO's.

  python scripts/bench_unroll.py [--config configs/meta/cartpole_anti_pd.yaml]
      [--ks 1 2 4 8 16] [--out docs/bench/bench_unroll.json] [overrides ...]

Writes <out> (JSON) and <out>.md (the table).
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

VARIANTS = {
    "unrolled, remat": lambda k: ["meta.method=unrolled", f"meta.inner_iterations={k}"],
    "unrolled, no remat": lambda k: [
        "meta.method=unrolled",
        f"meta.inner_iterations={k}",
        "meta.remat=false",
    ],
    "bmg (one_step + K-1 bootstrap)": lambda k: [
        "meta.method=one_step",
        "meta.inner_iterations=1",
        f"meta.bootstrap_steps={k - 1}",
    ],
}


def compiled_program(config, iterations: int, meta: bool):
    """(jitted chunk, its compiled form for one iteration, state, hps)."""
    if meta:
        built = build_lib.build(config, meta=True)
        learner, hps = built.meta, built.meta_hps
        state = jax.jit(learner.init)(jax.random.key(0), hps)
        step = learner.chunk
    else:
        built = build_lib.build(config)
        learner, hps = built.agent, built.hparams
        state = learner.init(jax.random.key(0), hps.reward_params)
        step = learner.train_chunk
    chunk = jax.jit(functools.partial(step, num_iterations=iterations))
    one = jax.jit(functools.partial(step, num_iterations=1)).lower(state, hps).compile()
    return chunk, one, state, hps


def memory_mb(compiled) -> dict:
    analysis = compiled.memory_analysis()
    if analysis is None:  # a backend without the analysis
        return {"temp_mb": None, "argument_mb": None}
    return {
        "temp_mb": analysis.temp_size_in_bytes / 2**20,
        "argument_mb": analysis.argument_size_in_bytes / 2**20,
    }


def timed(chunk, state, hps) -> tuple[object, float]:
    start = time.perf_counter()
    state, metrics = chunk(state, hps)
    jax.block_until_ready((state, metrics))
    return state, time.perf_counter() - start


def bench(path: str, ks: list[int], iterations: int, repeats: int, overrides: list[str]):
    rows = []
    for k in ks:
        plain_cfg = build_lib.load(path, [*overrides, "meta.inner_iterations=1"])
        ppo = compiled_program(plain_cfg, k * iterations, meta=False)
        programs = {"ppo": ppo}
        for name, extra in VARIANTS.items():
            cfg = build_lib.load(path, [*overrides, *extra(k)])
            programs[name] = compiled_program(cfg, iterations, meta=True)
        states = {n: timed(p[0], p[2], p[3])[0] for n, p in programs.items()}  # warm-up
        times = {n: [] for n in programs}
        for _ in range(repeats):
            for name, (chunk, _, _, hps) in programs.items():
                states[name], seconds = timed(chunk, states[name], hps)
                times[name].append(seconds)
        per_ppo_iteration = {n: float(np.median(t)) / (k * iterations) for n, t in times.items()}
        for name in VARIANTS:
            row = {"K": k, "variant": name, **memory_mb(programs[name][1])}
            row["ms_per_ppo_iteration"] = 1e3 * per_ppo_iteration[name]
            row["ratio_to_ppo"] = per_ppo_iteration[name] / per_ppo_iteration["ppo"]
            rows.append(row)
            temp = "-" if row["temp_mb"] is None else f"{row['temp_mb']:.1f} MB"
            print(
                f"[bench_unroll] K={k:>2} {name:<32} temp {temp:>10}, "
                f"{row['ratio_to_ppo']:.2f}x a PPO iteration",
                flush=True,
            )
        ppo_mem = memory_mb(programs["ppo"][1])
        rows.append({"K": k, "variant": "ppo", **ppo_mem, "ratio_to_ppo": 1.0})
    return rows


def write_markdown(out: Path, result: dict) -> None:
    lines = [
        "# Meta-iteration memory and time against the horizon K",
        "",
        f"`{result['command']}` ({result['machine']}, JAX {result['jax']}). Temporary memory "
        "is XLA's `memory_analysis()` of one compiled meta-iteration; time per PPO iteration "
        "as a ratio to a plain PPO iteration, timed alternately in one process (median of "
        f"{result['repeats']}).",
        "",
        "| K | variant | temp MB | time per PPO iteration (x PPO) |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        if row["variant"] == "ppo":
            continue
        temp = "-" if row["temp_mb"] is None else f"{row['temp_mb']:.1f}"
        lines.append(f"| {row['K']} | {row['variant']} | {temp} | {row['ratio_to_ppo']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/meta/cartpole_anti_pd.yaml")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/bench/bench_unroll.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    runtime.configure()
    driver.enable_compilation_cache("~/.cache/rlx/jax")
    rows = bench(args.config, args.ks, args.iterations, args.repeats, args.overrides)
    result = {
        "command": "python " + " ".join(["scripts/bench_unroll.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {jax.devices()[0].device_kind} x {jax.device_count()}",
        "jax": jax.__version__,
        "repeats": args.repeats,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(out, result)


if __name__ == "__main__":
    main()
