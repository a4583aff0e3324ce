"""Where the time of a data-parallel PPO iteration goes: one process of one device, one process
of two devices, two processes of one device each (gloo), the same CartPole learner
(``bench_processes.py``'s settings), each part jitted and timed on its own.

  python scripts/profile_processes.py [--out docs/bench/profile_processes.json] [overrides ...]

Per setting, in ms per PPO iteration (mean of 5 calls after a warm-up): ``collect`` (the
rollout, 128 env steps), ``samples_of`` (reward and GAE), ``sgd`` (the epochs x minibatches,
one gradient all-reduce per step on two devices), ``update`` (all of the learning half),
``chunk`` (10 whole iterations in one compiled call, as the driver runs them, per
iteration); and, two processes, what one gloo all-reduce inside a compiled loop costs for a few
payload sizes. Each setting is a fresh process (two for the gloo setting).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = ["train.num_envs=32", "train.unroll_length=128", "run.compilation_cache="]
CALLS = 5


def worker(process_id: int, port: int, overrides: list[str]) -> dict:
    """The timings of this process's setting (``port`` 0: a single process)."""
    import functools

    import jax

    from rlx.core import runtime

    runtime.configure()
    if port:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    import jax.numpy as jnp
    import numpy as np

    from rlx.config import build as build_lib
    from rlx.core import sharding
    from rlx.learn import ppo as ppo_lib

    config = build_lib.load(str(REPO / "configs/cartpole.yaml"), [*SETTINGS, *overrides])
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    mesh = sharding.make_mesh(jax.devices())
    init = lambda k: agent.init(k, hparams.reward_params)  # noqa: E731
    shardings = sharding.state_shardings(jax.eval_shape(init, jax.random.key(0)), mesh)
    state = jax.jit(init, out_shardings=shardings)(jax.random.key(0))
    hp = jax.device_put(jax.device_get(hparams), sharding.replicated(mesh))

    def samples(s, batch, h):
        out, *_ = ppo_lib.samples_of(agent, batch, h, s.reward_state)
        return jax.tree.map(jnp.sum, out)

    def sgd(s, batch, h):
        out, *_ = ppo_lib.samples_of(agent, batch, h, s.reward_state)
        return ppo_lib.sgd(agent, s.params, s.opt_state, s.obs_stats, out, h, 1e-3, batch.key)[0]

    def timed(fn, *args, per: int = 1) -> float:
        jax.block_until_ready(fn(*args))
        start = time.perf_counter()
        for _ in range(CALLS):
            out = fn(*args)
        jax.block_until_ready(out)
        return round((time.perf_counter() - start) / CALLS / per * 1000, 2)

    out = {}
    with jax.set_mesh(mesh):
        collect = jax.jit(lambda s: ppo_lib.collect(agent, s))
        out["collect"] = timed(collect, state)
        state, batch = collect(state)
        out["samples_of"] = timed(jax.jit(samples), state, batch, hp)
        out["sgd"] = timed(jax.jit(sgd), state, batch, hp)
        update = jax.jit(lambda s, b, h: ppo_lib.update(agent, s, b, h)[0])
        out["update"] = timed(update, state, batch, hp)
        chunk = jax.jit(
            functools.partial(agent.train_chunk, num_iterations=10),
            out_shardings=(shardings, sharding.replicated(mesh)),
        )
        out["chunk"] = timed(chunk, state, hp, per=10)
        if port:
            from jax.sharding import NamedSharding, PartitionSpec

            split = NamedSharding(mesh, PartitionSpec(sharding.BATCH_AXIS))
            for size in (1, 1000, 10000, 100000):
                x = jax.make_array_from_process_local_data(split, np.ones((size,), np.float32))

                def body(c, _):
                    return c + jax.lax.psum(c, sharding.BATCH_AXIS) * 1e-9, None

                loop = jax.jit(
                    jax.shard_map(
                        lambda c: jax.lax.scan(body, c, None, length=50)[0],  # noqa: B023
                        in_specs=PartitionSpec(sharding.BATCH_AXIS),
                        out_specs=PartitionSpec(sharding.BATCH_AXIS),
                    )
                )
                out[f"psum_{size}_floats_ms"] = timed(loop, x, per=50)
    return out


def launch(setting: str, overrides: list[str]) -> dict:
    """One setting's timings, from fresh processes."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, __file__, "--worker"]
    if setting == "1 process x 2 devices":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    if setting != "2 processes x 1 device":
        done = subprocess.run([*command, "0", "0", *overrides], env=env, capture_output=True,
                              text=True, check=True, timeout=900)  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [*command, str(i), str(port), *overrides],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    return json.loads(outputs[0].strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        process_id, port, *overrides = sys.argv[2:]
        print(json.dumps(worker(int(process_id), int(port), overrides)), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs/bench/profile_processes.json"))
    args, overrides = parser.parse_known_args()
    report = {
        "command": " ".join(["python", "scripts/profile_processes.py", *sys.argv[1:]]),
        "settings": [*SETTINGS, *overrides],
        "machine": f"{os.cpu_count()} CPU cores",
        "unit": "ms per PPO iteration (psum_*: ms per all-reduce)",
    }
    for setting in ("1 process x 1 device", "1 process x 2 devices", "2 processes x 1 device"):
        report[setting] = launch(setting, overrides)
        print(f"[profile_processes] {setting}: {report[setting]}", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
