"""The reward layer's share of a training step's time on MJX humanoid.

Two measures, in one process, on the same shapes (configs/humanoid_cpu.yaml unless --config):

  * apply: the reward spec's ``apply`` alone on a rollout batch [T, B] (jitted, median of
    repeats), divided by the time of one whole train iteration;
  * difference: train iterations/s with the full spec against the same program whose reward is
    a single term (``alive`` with weight 1), run alternately.

The spec exercises every stage: running term normalisation, a product combination, potential
shaping, a running bounded transform and clipping.

  python scripts/bench_reward_share.py [--repeats 5] [--out docs/bench/bench_reward_share.json]
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

from rlx.config import build as build_lib
from rlx.core import runtime
from rlx.learn import acting

REPO = Path(__file__).resolve().parent.parent
FULL_SPEC = {
    "combine": "product",
    "weights": {"standing": 1.0, "forward_velocity": 0.1},
    "product": {"factors": {"upright": 1.0, "small_control": 1.0}},
    "normalize": {"terms": ["forward_velocity"]},
    "shaping": [
        {"potential": {"signals": {"torso_height": 1.0, "uprightness": 0.5}}},
        {"bounded": {"mode": "step", "k": 2.0, "running": True}},
        {"clip": {"low": -5.0, "high": 5.0}},
    ],
}
TRIVIAL_SPEC = {"weights": {"alive": 1.0}}


def build(base: Path, reward: dict, overrides: list[str]):
    # A whole-section override (JSON is YAML) replaces the base config's reward section.
    config = build_lib.load(base, [*overrides, f"reward={json.dumps(reward)}"])
    built = build_lib.build(config)
    return config, built.agent, built.hparams


def _relative(path: str) -> str:
    """``path`` relative to the repo when it lies inside it (commands read the same anywhere)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "humanoid_stand.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10, help="train iterations per timing")
    parser.add_argument("--out", default="docs/bench/bench_reward_share.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    runtime.configure()
    programs = {}
    for name, spec in (("full", FULL_SPEC), ("trivial", TRIVIAL_SPEC)):
        config, agent, hparams = build(Path(args.config), spec, args.overrides)
        chunk = jax.jit(
            functools.partial(agent.train_chunk, num_iterations=args.iterations), donate_argnums=0
        )
        state = agent.init(jax.random.key(0), hparams.reward_params)
        state, _ = jax.block_until_ready(chunk(state, hparams))  # compile and warm up
        programs[name] = (agent, hparams, chunk, state)
        print(f"[bench_reward_share] compiled {name}", flush=True)

    times = {name: [] for name in programs}
    for _ in range(args.repeats):
        for name, (agent, hparams, chunk, state) in programs.items():
            start = time.perf_counter()
            state, _ = jax.block_until_ready(chunk(state, hparams))
            times[name].append((time.perf_counter() - start) / args.iterations)
            programs[name] = (agent, hparams, chunk, state)

    agent, hparams, _, state = programs["full"]
    collect = functools.partial(acting.collect, agent.actor, length=agent.static.unroll_length)
    _, traj, _ = jax.jit(collect)(state.params, state.obs_stats, state.env_state, state.key)
    apply = jax.jit(
        lambda traj, reward_state: agent.reward_fn.apply(
            hparams.reward_params, reward_state, traj, gamma=hparams.gamma
        )[0]
    )
    jax.block_until_ready(apply(traj, state.reward_state))
    apply_times = []
    for _ in range(max(args.repeats, 20)):
        start = time.perf_counter()
        jax.block_until_ready(apply(traj, state.reward_state))
        apply_times.append(time.perf_counter() - start)

    step_full = float(np.median(times["full"]))
    step_trivial = float(np.median(times["trivial"]))
    apply_s = float(np.median(apply_times))
    result = {
        "command": "python scripts/bench_reward_share.py "
        + " ".join(
            [f"--config {_relative(args.config)}", f"--repeats {args.repeats}", *args.overrides]
        ),
        "machine": f"{platform.machine()} ({jax.device_count()} x {jax.devices()[0].device_kind})",
        "jax": jax.__version__,
        "env": config.env.name,
        "num_envs": config.train.num_envs,
        "unroll_length": config.train.unroll_length,
        "train_iteration_s_full_spec": step_full,
        "train_iteration_s_trivial_spec": step_trivial,
        "reward_apply_s": apply_s,
        "share_apply": apply_s / step_full,
        "share_difference": (step_full - step_trivial) / step_full,
        "spec": FULL_SPEC,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
