"""rlx PPO on CartPole-v1 with PureJaxRL's settings: wall time for 1 and 16 seeds, steps to 475.

PureJaxRL's PPO (4 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4 annealed, entropy 0.01,
clip 0.2, gamma 0.99, lambda 0.95, max grad norm 0.5, 64x64 tanh MLPs, no observation
normalisation, 5e5 steps) measured on these machines: 10.4 s for 1 seed and 50.7 s for 16 seeds
vmapped, compile included (`../shared/reference/anchors.md`). Here the same settings run as

  * "whole": the full run as one jitted scan (as PureJaxRL does), compile included, no eval;
  * "curve": chunks of 10 iterations with a deterministic eval (16 envs, full episodes) after each,
    to find the env steps at which eval return first reaches 475, per seed.

The persistent compilation cache is left off so compile time is counted in full.

  python scripts/bench_cartpole.py [--seeds 16] [--out docs/bench_cartpole.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from rlx import build as build_lib
from rlx import config as config_lib
from rlx import runtime

REPO = Path(__file__).resolve().parent.parent
PUREJAXRL = [
    "train.total_steps=499712",  # PureJaxRL: 5e5 // (4 * 128) = 976 updates
    "train.num_envs=4",
    "train.unroll_length=128",
    "train.num_minibatches=4",
    "train.num_epochs=4",
    "train.normalize_observations=false",
    "ppo.learning_rate=2.5e-4",
    "ppo.entropy_cost=0.01",
    "ppo.clip_epsilon=0.2",
    "ppo.gamma=0.99",
    "ppo.gae_lambda=0.95",
    "ppo.max_grad_norm=0.5",
    "eval.num_envs=16",
]


def load(chunk_iterations: int) -> config_lib.Config:
    overrides = [*PUREJAXRL, f"run.chunk_iterations={chunk_iterations}"]
    return build_lib.load(REPO / "configs" / "cartpole.yaml", overrides)


def whole_run(num_seeds: int) -> float:
    """Wall seconds for the full run of ``num_seeds`` vmapped seeds, compile included."""
    start = time.perf_counter()
    config = load(chunk_iterations=976)
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    keys = jax.random.split(jax.random.key(0), num_seeds)
    run = functools.partial(agent.train_chunk, num_iterations=config.iterations)

    @jax.jit
    def train(keys):
        states = jax.vmap(agent.init, in_axes=(0, None))(keys, hparams.reward_params)
        states, metrics = jax.vmap(run, in_axes=(0, None))(states, hparams)
        return metrics["episode_total/return"].sum(-1) / metrics["episode_total/episodes"].sum(-1)

    mean_train_return = jax.block_until_ready(train(keys))
    elapsed = time.perf_counter() - start
    print(
        f"whole run, {num_seeds} seed(s): {elapsed:.1f} s "
        f"(mean train return over the run {float(np.mean(mean_train_return)):.1f})",
        flush=True,
    )
    return elapsed


def curve(num_seeds: int, chunk_iterations: int = 10) -> dict:
    """Eval return after every chunk, for ``num_seeds`` vmapped seeds."""
    config = load(chunk_iterations)
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    keys = jax.random.split(jax.random.key(0), num_seeds)
    states = jax.jit(jax.vmap(agent.init, in_axes=(0, None)))(keys, hparams.reward_params)
    chunk = jax.jit(
        jax.vmap(
            functools.partial(agent.train_chunk, num_iterations=chunk_iterations),
            in_axes=(0, None),
        ),
        donate_argnums=0,
    )
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None, None)))
    eval_key = jax.random.key(config.eval.seed)
    steps, returns = [], []
    for index in range(config.iterations // chunk_iterations):
        states, _ = chunk(states, hparams)
        returns.append(np.asarray(evaluate(states, hparams, eval_key)["eval/return"]))
        steps.append((index + 1) * chunk_iterations * agent.static.batch_size)
    returns = np.stack(returns, axis=1)  # [seeds, chunks]
    first = []
    for seed_returns in returns:
        hit = np.nonzero(seed_returns >= 475)[0]
        first.append(int(steps[hit[0]]) if len(hit) else None)
    reached = [s for s in first if s is not None]
    print(
        f"steps to eval return 475: {len(reached)}/{num_seeds} seeds, median "
        f"{np.median(reached) if reached else float('nan'):,.0f}",
        flush=True,
    )
    return {
        "env_steps": steps,
        "eval_return": returns.tolist(),
        "first_steps_to_475": first,
        "seeds_reaching_475": len(reached),
        "median_steps_to_475": float(np.median(reached)) if reached else None,
        "final_eval_return_mean": float(returns[:, -1].mean()),
        "final_eval_return_min": float(returns[:, -1].min()),
    }


def _part(part: str, seeds: int, timeout_s: float) -> tuple[object, int]:
    """Runs one measurement in a fresh process (compile counted in full, nothing shared).

    On a 2-core CPU, XLA's CPU runtime (jaxlib 0.10.2) was seen to wedge with every worker
    idle, waiting for a result, on the second or third large program of one process. A part
    that passes ``timeout_s`` is killed and run again; the number of tries is reported.
    """
    command = [sys.executable, __file__, "--part", part, "--seeds", str(seeds)]
    for attempt in range(1, 4):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            print(f"{part} with {seeds} seed(s): no result in {timeout_s:.0f} s, retrying")
            continue
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        print(out.stdout.strip().splitlines()[-2], flush=True)
        return json.loads(out.stdout.strip().splitlines()[-1]), attempt
    raise RuntimeError(f"{part} with {seeds} seed(s) never finished")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench_cartpole.json"))
    parser.add_argument("--part", choices=("whole", "curve"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    runtime.configure()
    if args.part == "whole":
        print(json.dumps(whole_run(args.seeds)))
        return
    if args.part == "curve":
        print(json.dumps(curve(args.seeds)))
        return
    whole_1, tries_1 = _part("whole", 1, 120)
    whole_n, tries_n = _part("whole", args.seeds, 600)
    curve_n, tries_curve = _part("curve", args.seeds, 900)
    result = {
        "machine": f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}",
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "settings": PUREJAXRL,
        "whole_1_seed_s": whole_1,
        f"whole_{args.seeds}_seeds_s": whole_n,
        "tries": {"whole_1": tries_1, "whole_n": tries_n, "curve": tries_curve},
        "purejaxrl_reference_s": {"1_seed": 10.4, "16_seeds": 50.7},
        "curve": curve_n,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    markdown = Path(args.out).with_suffix(".md")
    markdown.write_text(_markdown(result, args.seeds))
    print(f"wrote {args.out} and {markdown}")


def _markdown(result: dict, seeds: int) -> str:
    curve_result = result["curve"]
    first = [s for s in curve_result["first_steps_to_475"] if s is not None]
    return (
        "# CartPole-v1: rlx PPO against PureJaxRL's settings\n\n"
        f"Machine: {result['machine']}, {result['cpu_count']} CPU cores, JAX {result['jax']}. "
        "Written by `python scripts/bench_cartpole.py`; each part runs in a fresh process, "
        "compile included, persistent compilation cache off.\n\n"
        "| | rlx | PureJaxRL (measured on these machines, anchors.md) |\n|---|---|---|\n"
        f"| 5e5 steps, 1 seed, wall s | {result['whole_1_seed_s']:.1f} | 10.4 |\n"
        f"| 5e5 steps, {seeds} seeds vmapped, wall s | {result[f'whole_{seeds}_seeds_s']:.1f} "
        "| 50.7 (16 seeds) |\n\n"
        f"Deterministic eval (16 envs, full episodes) every 5,120 env steps, {seeds} seeds: "
        f"{len(first)}/{seeds} reach eval return 475; first at "
        f"{min(first) if first else '-'} to {max(first) if first else '-'} env steps, median "
        f"{curve_result['median_steps_to_475']}; final eval return mean "
        f"{curve_result['final_eval_return_mean']:.1f}, min "
        f"{curve_result['final_eval_return_min']:.1f}.\n\n"
        f"Tries per part (a part that hangs is rerun, see the script): {result['tries']}.\n"
    )


if __name__ == "__main__":
    main()
