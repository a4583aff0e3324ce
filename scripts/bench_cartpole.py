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
import platform
import time
from pathlib import Path

import jax
import numpy as np

from rlx import config as config_lib
from rlx import driver

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
    return config_lib.load(REPO / "configs" / "cartpole.yaml", overrides)


def whole_run(num_seeds: int) -> float:
    """Wall seconds for the full run of ``num_seeds`` vmapped seeds, compile included."""
    start = time.perf_counter()
    config = load(chunk_iterations=976)
    agent, hparams = driver.build(config)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    run = functools.partial(agent.train_chunk, num_iterations=config.iterations)

    @jax.jit
    def train(keys):
        states = jax.vmap(agent.init, in_axes=(0, None))(keys, hparams.reward)
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
    agent, hparams = driver.build(config)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    states = jax.jit(jax.vmap(agent.init, in_axes=(0, None)))(keys, hparams.reward)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench_cartpole.json"))
    args = parser.parse_args()
    result = {
        "machine": f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}",
        "cpu_count": __import__("os").cpu_count(),
        "jax": jax.__version__,
        "settings": PUREJAXRL,
        "whole_1_seed_s": whole_run(1),
        f"whole_{args.seeds}_seeds_s": whole_run(args.seeds),
        "purejaxrl_reference_s": {"1_seed": 10.4, "16_seeds": 50.7},
        "curve": curve(args.seeds),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
