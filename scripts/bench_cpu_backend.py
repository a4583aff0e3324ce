"""MuJoCo's C engine (``env.params.impl: c``) against MJX (``impl: jax``) on the CPU, side by side.

  python scripts/bench_cpu_backend.py [--rounds 2] [--config configs/humanoid_cpu.yaml] \\
      [--steps 64000] [--out docs/bench/cpu_backend.json]

Each round runs, in fresh processes and alternating the order of the backends between rounds:

* **raw**: env steps/s of a jitted ``lax.scan`` of uniform random actions at the config's batch
  (``train.num_envs``), the episode wrapper's resets included (``scripts/bench_envs.py``'s
  measure), for both backends; and the C engine alone (``mujoco.batch.Batch`` stepped from
  Python with the same random controls and resets of fallen bodies, no JAX);
* **train**: ``rlx train CONFIG env.params.impl=<impl> train.total_steps=<steps>`` (one final
  eval): the median of its chunks' ``train/steps_per_s`` and its compile seconds.

* **split**: where a training iteration's time goes, per backend: seconds for 10 PPO
  iterations of rollouts alone, of updates alone, and of whole iterations (``update_share_c``
  and ``update_share_mjx``: the update's share, means over rounds).

Once (not timed): **equivalence**, the same MJCF through both backends from the same first
state under the same fixed actions: the largest ``qpos`` difference per step, the first step
where it passes 1e-4, 1e-3 and 1e-2 (contacts make the two diverge: MJX runs in float32, the C
engine in float64), and the terms' largest difference before then.

Writes ``--out`` with ``train_ratio_c_over_mjx`` and ``train_over_raw_c`` (means over rounds;
raw C: the in-program rollout of the C backend), next to every round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> dict:
    """Runs ``code`` in a fresh Python; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"bench process failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def raw_rate(env: str, impl: str, num_envs: int, steps: int) -> dict:
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "scripts")!r})
from rlx.core import runtime
runtime.configure()
import jax
jax.config.update("jax_enable_compilation_cache", False)
from bench_envs import measure
print(json.dumps(measure({env!r}, {num_envs}, {steps}, 5, impl={impl!r})))
"""
    return _python(code)


def raw_engine_rate(env: str, num_envs: int, steps: int) -> dict:
    """The C engine alone: ``mujoco.batch.Batch`` with random controls, fallen bodies reset."""
    code = f"""
import json, time, numpy as np
from rlx import envs
from rlx.envs.mujoco_c import threads
from mujoco.batch import Batch
raw = envs.make_raw({env!r}, impl="c")
model = raw.mj_model
batch = Batch(model, {num_envs}, threads())
batch.reset()
rng = np.random.default_rng(0)
low, high = model.actuator_ctrlrange.T
ctrl, qpos = batch.bind("ctrl"), batch.bind("qpos")
def run(n):
    for _ in range(n):
        ctrl[...] = rng.uniform(low, high, ctrl.shape)
        batch.step(nstep=raw.frames_per_step)
        fallen = np.nonzero(qpos[:, 2] < raw.healthy_z_min)[0]
        if len(fallen):
            batch.reset(fallen)
run(10)
times = []
for _ in range(5):
    start = time.perf_counter(); run({steps}); times.append(time.perf_counter() - start)
print(json.dumps({{"steps_per_s": {num_envs} * {steps} / float(np.median(times)),
                  "threads": threads()}}))
"""
    return _python(code)


def train_rate(config: str, impl: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        argv = [sys.executable, "-m", "rlx", "train", config, f"env.params.impl={impl}",
                f"train.total_steps={steps}", "eval.every_chunks=1000000",
                "run.compilation_cache=''", "--run-dir", str(run_dir),
                "--no-progress"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"train {impl} failed: {done.stderr.strip()[-2000:]}")
        rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["train/steps_per_s"] for r in rows if r.get("train/steps_per_s")]
    return {
        "train_steps_per_s": statistics.median(rates),
        "compile_s": next(r["compile_s"] for r in rows if r.get("compile_s") is not None),
        "wall_s": wall,
        "env_steps": rows[-1]["env_steps"],
    }


def split(config: str, impl: str, iterations: int = 10) -> dict:
    """Where a training iteration's time goes: seconds for ``iterations`` PPO iterations of
    rollouts alone (``collect``), of updates alone on one rollout (``update``), and of whole
    iterations (``full``), each a jitted scan, the best of 3."""
    code = f"""
import json, time, jax
from rlx.core import runtime
runtime.configure()
jax.config.update("jax_enable_compilation_cache", False)
from rlx.config import build as build_lib
config = build_lib.load({config!r}, ["env.params.impl={impl}"])
built = build_lib.build(config)
agent, hp = built.agent, built.hparams
def scanned(fn):
    return jax.jit(lambda s: jax.lax.scan(lambda c, _: (fn(c), None), s, None,
                                          length={iterations})[0])
programs = {{
    "collect": (scanned(lambda s: agent.collect(s)[0]), None),
    "update": (scanned(lambda sb: (agent.update(sb[0], sb[1], hp)[0], sb[1])), "batch"),
    "full": (scanned(lambda s: agent.train_step(s, hp)[0]), None),
}}
state = agent.init(jax.random.key(0), hp.reward_params)
out = {{}}
for name, (fn, needs) in programs.items():
    x = jax.jit(agent.collect)(state) if needs else state
    x = jax.block_until_ready(fn(x))
    times = []
    for _ in range(3):
        start = time.perf_counter(); x = jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - start)
    out[name + "_s"] = min(times)
out["update_share"] = out["update_s"] / out["full_s"]
print(json.dumps(out))
"""
    return _python(code)


def equivalence(env: str, num_envs: int, steps: int) -> dict:
    code = f"""
import json, jax, numpy as np
from rlx.core import runtime
runtime.configure()
from rlx import envs
out = {{}}
actions = np.asarray(jax.random.uniform(jax.random.key(1), ({steps}, {num_envs}, 17), minval=-1))
for impl in ("c", "jax"):
    env = envs.make({env!r}, impl=impl, terminate_when_unhealthy=False, episode_length=100000)
    batched = envs.VmapWrapper(env)
    def run(key):
        first = batched.reset(jax.random.split(key, {num_envs}))
        def step(state, action):
            state = batched.step(state, action)
            return state, (state.physics.qpos, state.terms)
        return jax.lax.scan(step, first, actions)[1]
    qpos, terms = jax.jit(run)(jax.random.key(0))
    out[impl] = (np.asarray(qpos), {{k: np.asarray(v) for k, v in terms.items()}})
diff = np.abs(out["c"][0] - out["jax"][0]).max(axis=(1, 2))
first = lambda tol: next((int(i) + 1 for i in np.nonzero(diff > tol)[0]), None)
before = (first(1e-4) or {steps}) - 1
terms = {{k: float(np.abs(out["c"][1][k][:before] - out["jax"][1][k][:before]).max())
          for k in out["c"][1]}} if before else {{}}
scale = {{k: float(np.abs(out["jax"][1][k][:before]).max()) for k in terms}}
print(json.dumps({{"num_envs": {num_envs}, "steps": {steps},
    "qpos_max_abs_diff_per_step": [float(d) for d in diff],
    "first_step_over": {{"1e-4": first(1e-4), "1e-3": first(1e-3), "1e-2": first(1e-2)}},
    "terms_max_abs_diff_before_1e-4": terms, "terms_max_abs_before_1e-4": scale}}))
"""
    return _python(code)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/humanoid_cpu.yaml")
    parser.add_argument("--env", default="humanoid")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=64000, help="env steps of each train run")
    parser.add_argument("--raw-steps", type=int, default=20, help="steps per timed raw scan")
    parser.add_argument("--equivalence-steps", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "docs/bench/cpu_backend.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from rlx import config as config_lib

    num_envs = config_lib.load(args.config).train.num_envs
    rounds = []
    for r in range(args.rounds):
        order = ("c", "jax") if r % 2 == 0 else ("jax", "c")
        row: dict = {"order": list(order)}
        for impl in order:
            row[f"raw_{impl}"] = raw_rate(args.env, impl, num_envs, args.raw_steps)["steps_per_s"]
            row[f"train_{impl}"] = train_rate(args.config, impl, args.steps)
            print(f"[bench_cpu_backend] round {r} {impl}: raw {row[f'raw_{impl}']:,.0f}, "
                  f"train {row[f'train_{impl}']['train_steps_per_s']:,.0f} steps/s, compile "
                  f"{row[f'train_{impl}']['compile_s']:.1f} s", flush=True)  # fmt: skip
        for impl in order:
            row[f"split_{impl}"] = split(args.config, impl)
        row["raw_engine"] = raw_engine_rate(args.env, num_envs, 50)["steps_per_s"]
        c, mjx = row["train_c"]["train_steps_per_s"], row["train_jax"]["train_steps_per_s"]
        row["train_ratio_c_over_mjx"] = c / mjx
        row["train_over_raw_c"] = c / row["raw_c"]
        row["train_over_raw_engine"] = c / row["raw_engine"]
        row["compile_ratio_c_over_mjx"] = (
            row["train_c"]["compile_s"] / row["train_jax"]["compile_s"]
        )
        rounds.append(row)
    mean = lambda key: statistics.mean(r[key] for r in rounds)
    result = {
        "command": "python " + " ".join(["scripts/bench_cpu_backend.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "config": args.config,
        "num_envs": num_envs,
        "train_ratio_c_over_mjx": mean("train_ratio_c_over_mjx"),
        "train_over_raw_c": mean("train_over_raw_c"),
        "train_over_raw_engine": mean("train_over_raw_engine"),
        "compile_ratio_c_over_mjx": mean("compile_ratio_c_over_mjx"),
        "update_share_c": statistics.mean(r["split_c"]["update_share"] for r in rounds),
        "update_share_mjx": statistics.mean(r["split_jax"]["update_share"] for r in rounds),
        "rounds": rounds,
        "equivalence": equivalence(args.env, 4, args.equivalence_steps),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"[bench_cpu_backend] train c/mjx {result['train_ratio_c_over_mjx']:.2f}x, train/raw c "
          f"{result['train_over_raw_c']:.2f}, written {args.out}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
