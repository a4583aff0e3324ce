"""What lowering JAX's threefry PRNG as straight-line code on the CPU buys (``rlx.core.runtime``).

  python scripts/bench_threefry.py [--seeds 1 16] [--iterations 100] [--rounds 6]
      [--out docs/bench/bench_threefry.json]

JAX lowers threefry on the CPU as a ``while`` loop of 5 rounds per random draw (on GPU/TPU
as straight-line code); ``rlx.core.runtime.configure`` registers the straight-line form for the CPU
too (``RLX_THREEFRY_ROLLED=1`` keeps the loop). Both forms compute the same bits. For each seed
count, the same vmapped CartPole training program (PureJaxRL's settings, as in
``scripts/bench_cartpole.py``, ``--iterations`` PPO iterations) is lowered and compiled (timed)
twice per form, in the order loop, straight, straight, loop, and the two are then run
alternately, ``--rounds`` times each, in one process. Reports compile seconds, the median run
time of each form, the median and spread of
the per-round ratios, and whether the two forms' metrics are bit-identical.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cartpole  # noqa: E402  (PureJaxRL's settings, one place)

from rlx.core import runtime  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _program(num_seeds: int, iterations: int, form: str):
    from rlx.config import build as build_lib

    runtime.threefry_form_on_cpu(form)
    config = bench_cartpole.load(chunk_iterations=iterations)
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    keys = jax.random.split(jax.random.key(0), num_seeds)
    run = functools.partial(agent.train_chunk, num_iterations=iterations)

    def train(keys):
        states = jax.vmap(agent.init, in_axes=(0, None))(keys, hparams.reward_params)
        return jax.vmap(run, in_axes=(0, None))(states, hparams)[1]

    start = time.perf_counter()
    compiled = jax.jit(train).lower(keys).compile()  # lowering happens here, under ``form``
    return compiled, keys, time.perf_counter() - start


def measure(num_seeds: int, iterations: int, rounds: int) -> dict:
    # Each form compiled twice, in the order loop, straight, straight, loop, so that neither
    # gains from going second (warm caches): compile_s is the mean of its two.
    compiles = {"loop": [], "straight": []}
    programs = {}
    for form in ("loop", "straight", "straight", "loop"):
        programs[form] = _program(num_seeds, iterations, form)
        compiles[form].append(programs[form][2])
    outputs = {form: jax.block_until_ready(c(k)) for form, (c, k, _) in programs.items()}
    same = all(
        np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
        for a, b in zip(
            jax.tree.leaves(outputs["loop"]), jax.tree.leaves(outputs["straight"]), strict=True
        )
    )
    times = {"loop": [], "straight": []}
    for r in range(rounds):
        order = ("loop", "straight") if r % 2 == 0 else ("straight", "loop")
        for form in order:
            compiled, keys, _ = programs[form]
            start = time.perf_counter()
            jax.block_until_ready(compiled(keys))
            times[form].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times["loop"], times["straight"], strict=True)]
    row = {
        "seeds": num_seeds,
        "iterations": iterations,
        "compile_s": {form: round(statistics.mean(ts), 2) for form, ts in compiles.items()},
        "compiles_s": {form: [round(t, 2) for t in ts] for form, ts in compiles.items()},
        "run_s": {form: [round(t, 3) for t in ts] for form, ts in times.items()},
        "run_speedup_median": round(statistics.median(ratios), 3),
        "run_speedup_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "compile_speedup": round(
            statistics.mean(compiles["loop"]) / statistics.mean(compiles["straight"]), 3
        ),
        "metrics_identical": same,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "bench_threefry.json"))
    args = parser.parse_args()
    runtime.configure()
    rows = [measure(n, args.iterations, args.rounds) for n in args.seeds]
    result = {
        "machine": f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].platform}",
        "jax": jax.__version__,
        "command": "python scripts/bench_threefry.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Threefry on the CPU: JAX's loop against straight-line code",
        "",
        f"Machine: {result['machine']}, JAX {result['jax']}. Written by `{result['command']}`: "
        "the same vmapped CartPole training program (PureJaxRL's settings) lowered with each "
        "form, both compiled, then run alternately in one process.",
        "",
        "| seeds | iterations | compile s, loop / straight | run s (median), loop / straight "
        "| run speed-up, median [min, max] | compile speed-up | metrics bit-identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        c, t = row["compile_s"], row["run_s"]
        lines.append(
            f"| {row['seeds']} | {row['iterations']} | {c['loop']} / {c['straight']} | "
            f"{statistics.median(t['loop']):.2f} / {statistics.median(t['straight']):.2f} | "
            f"{row['run_speedup_median']}x {row['run_speedup_range']} | "
            f"{row['compile_speedup']}x | {row['metrics_identical']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
