"""What one PPO minibatch step costs on the CPU under each clipping setting, in one process.

  python scripts/bench_sgd_step.py [--iterations 50] [--rounds 6]
      [--out docs/bench/bench_sgd_step.json]

The CartPole bench's program (``scripts/bench_cartpole.py``: PureJaxRL's settings, 64x64 tanh
MLPs, minibatches of 128) collects one batch; then, for each variant of ``train.gradient_clip``
(global_norm, elementwise) x ``train.clip_value_loss`` (off, on), a jitted program runs
``--iterations`` PPO updates' worth of minibatch steps (16 each: 4 epochs x 4 minibatches) on
that batch's minibatches, ``rlx.learn.ppo.minibatch_step`` as the train step runs it. The programs
are compiled first, then run in turn, the order reversed every other round; the median over
rounds is reported per minibatch step. Every parameter leaf feeds the result, so XLA cannot drop
any part of the step. Writes the JSON and a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from rlx.core import runtime  # noqa: E402

VARIANTS = {
    "global_norm": ("global_norm", False),
    "global_norm + value clip": ("global_norm", True),
    "elementwise": ("elementwise", False),
    "elementwise + value clip": ("elementwise", True),
}


def programs(iterations: int) -> tuple[dict, tuple, int]:
    """({variant: compiled program}, its arguments (params, opt_state), minibatch steps per
    update)."""
    import bench_cartpole
    import jax
    import jax.numpy as jnp

    from rlx.config import build as build_lib
    from rlx.learn import ppo

    built = build_lib.build(bench_cartpole.load(chunk_iterations=976, variant="rlx_purejaxrl"))
    base, hp = built.agent, built.hparams
    key = jax.random.key(0)
    state = jax.jit(base.init)(key, hp.reward_params)
    state, batch = jax.jit(base.collect)(state)
    steps = base.static.num_epochs * base.static.num_minibatches
    out = {}
    for name, (clip, value_clip) in VARIANTS.items():
        static = dataclasses.replace(base.static, gradient_clip=clip, clip_value_loss=value_clip)
        agent = dataclasses.replace(base, static=static)
        samples = ppo.samples_of(agent, batch, hp, state.reward_state)[0]
        minibatches = ppo.minibatches(samples, key, base.static.num_minibatches)
        repeat = steps // base.static.num_minibatches
        minibatches = jax.tree.map(lambda x, r=repeat: jnp.concatenate([x] * r), minibatches)
        optimizer = ppo.make_optimizer(agent, hp, hp.learning_rate)
        step = functools.partial(ppo.minibatch_step, agent, optimizer, state.obs_stats, hp)

        def run(params, opt_state, step=step, minibatches=minibatches):
            def update(carry, _):
                return jax.lax.scan(step, carry, minibatches)[0], None

            (params, _), _ = jax.lax.scan(update, (params, opt_state), None, length=iterations)
            return sum(jnp.sum(x) for x in jax.tree.leaves(params))

        args = (state.params, state.opt_state)
        out[name] = jax.jit(run).lower(*args).compile()
    return out, (state.params, state.opt_state), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "bench_sgd_step.json"))
    args = parser.parse_args()
    runtime.configure()
    import jax
    import numpy as np

    compiled, call_args, steps = programs(args.iterations)
    seconds = {name: [] for name in compiled}
    for r in range(args.rounds):
        order = list(compiled) if r % 2 == 0 else list(compiled)[::-1]
        for name in order:
            start = time.perf_counter()
            jax.block_until_ready(compiled[name](*call_args))
            seconds[name].append(time.perf_counter() - start)
    per_step = {
        name: float(np.median(s)) / (args.iterations * steps) * 1e6 for name, s in seconds.items()
    }
    result = {
        "machine": f"{platform.machine()}, {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
        "command": " ".join(["python", "scripts/bench_sgd_step.py", *sys.argv[1:]]),
        "minibatch_steps_per_program": args.iterations * steps,
        "seconds_per_round": seconds,
        "median_us_per_minibatch_step": per_step,
    }
    for name, us in per_step.items():
        print(f"{name:26s} {us:6.1f} us per minibatch step", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    rows = "".join(
        f"| {name} | {us:.1f} | {us / per_step['global_norm']:.2f} |\n"
        for name, us in per_step.items()
    )
    out.with_suffix(".md").write_text(
        "# One PPO minibatch step on the CPU, by clipping setting\n\n"
        f"`{result['command']}` ({result['machine']}, JAX {result['jax']}): CartPole's bench "
        "program (64x64 tanh MLPs, minibatch 128), "
        f"{result['minibatch_steps_per_program']} minibatch steps per program, median of "
        f"{args.rounds} alternating rounds in one process.\n\n"
        "| `train.gradient_clip` (+ `train.clip_value_loss`) | us per minibatch step | "
        "/ global_norm |\n|---|---|---|\n" + rows
    )
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
