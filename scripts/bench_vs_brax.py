"""rlx against Brax's own PPO trainer on the same Brax envs and settings, one seed at a time.

Rows: Brax PPO (``brax.training.agents.ppo.train``) on ``<env>``; rlx on ``brax:<env>`` (the
adapter, unit reward weights, so the same reward); and rlx's own MJX ``humanoid`` as an extra
row. Each run is a fresh process. Brax 0.14.2's trainer calls ``jax.device_put_replicated``,
which JAX 0.10 removed; this script shims that one call (``_shim_device_put_replicated``).

Resets: Brax's trainer returns each env to a cached first state; the rlx rows use the same
(``env.reset_mode=cached``), so both step the same physics per env step.

Brax and rlx runs alternate seed by seed (Brax seed 0, rlx seed 0, Brax seed 1, ...).

Definitions (the same for both):
  training steps/s: env steps / wall time of all chunks (Brax: epochs) after the first,
    evaluation excluded (Brax: its own ``training/sps``, which excludes eval);
  compile time: wall time from the start of training until the first train chunk has finished
    (Brax: until the first progress callback after training started, minus that eval's time);
  raw env rate: the same wrappers (auto-reset) with the policy's inference in the loop, no
    learning, same number of envs.

  python scripts/bench_vs_brax.py                # CPU sizes, 3 seeds, writes docs/bench/
  python scripts/bench_vs_brax.py --gpu          # 2048 envs, more steps
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

REPO = Path(__file__).resolve().parent.parent

CPU = {
    "num_envs": 256,
    "batch_size": 64,
    "unroll_length": 10,
    "num_minibatches": 8,
    "num_updates_per_batch": 4,
    "steps": {"humanoid": 204_800, "inverted_pendulum": 307_200},
    "chunks": 4,
    "eval_envs": 16,
}
GPU = {
    "num_envs": 2048,
    "batch_size": 1024,
    "unroll_length": 10,
    "num_minibatches": 32,
    "num_updates_per_batch": 4,
    "steps": {"humanoid": 10_485_760, "inverted_pendulum": 5_242_880},
    "chunks": 8,
    "eval_envs": 128,
}
COMMON = {
    "learning_rate": 3e-4,
    "entropy_cost": 1e-3,
    "discounting": 0.97,
    "gae_lambda": 0.95,
    "clipping_epsilon": 0.3,
    "episode_length": 1000,
}


def _shim_device_put_replicated():
    """Brax 0.14.2 calls jax.device_put_replicated, removed in JAX 0.10: put it back."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    def device_put_replicated(x, devices):
        sharding = NamedSharding(Mesh(np.asarray(devices), ("i",)), PartitionSpec("i"))
        stack = lambda a: np.stack([np.asarray(a)] * len(devices))
        return jax.device_put(jax.tree.map(stack, x), sharding)

    if not hasattr(jax, "device_put_replicated"):
        jax.device_put_replicated = device_put_replicated


def run_brax(env_name: str, seed: int, sizes: dict) -> dict:
    _shim_device_put_replicated()
    from brax import envs as brax_envs
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo

    env = brax_envs.get_environment(env_name, backend="mjx")
    progress = []
    start = time.perf_counter()

    def on_progress(step, metrics):
        progress.append(
            {
                "step": int(step),
                "wall_s": time.perf_counter() - start,
                "eval_return": float(metrics.get("eval/episode_reward", float("nan"))),
                "sps": float(metrics.get("training/sps", float("nan"))),
                "eval_s": float(metrics.get("eval/walltime", 0.0)),
            }
        )

    network = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=(32,) * 4,
        value_hidden_layer_sizes=(256,) * 5,
    )
    ppo.train(
        environment=env,
        num_timesteps=sizes["steps"][env_name],
        num_evals=sizes["chunks"] + 1,
        num_envs=sizes["num_envs"],
        batch_size=sizes["batch_size"],
        unroll_length=sizes["unroll_length"],
        num_minibatches=sizes["num_minibatches"],
        num_updates_per_batch=sizes["num_updates_per_batch"],
        learning_rate=COMMON["learning_rate"],
        entropy_cost=COMMON["entropy_cost"],
        discounting=COMMON["discounting"],
        gae_lambda=COMMON["gae_lambda"],
        clipping_epsilon=COMMON["clipping_epsilon"],
        episode_length=COMMON["episode_length"],
        normalize_observations=True,
        reward_scaling=1.0,
        num_eval_envs=sizes["eval_envs"],
        deterministic_eval=True,
        network_factory=network,
        seed=seed,
        progress_fn=on_progress,
    )
    after_first = [p["sps"] for p in progress[2:]]
    return {
        "framework": "brax",
        "env": env_name,
        "seed": seed,
        "progress": progress,
        "train_steps_per_s": sum(after_first) / len(after_first) if after_first else None,
        "compile_s": brax_compile_s(progress),
        "final_eval_return": progress[-1]["eval_return"],
        "env_steps": progress[-1]["step"],
        "wall_s": time.perf_counter() - start,
        "shim": "jax.device_put_replicated shimmed for Brax 0.14.2 on JAX 0.10",
    }


def brax_compile_s(progress: list[dict]) -> float | None:
    """Wall time of Brax's first training epoch (its compile included), evaluation excluded.

    Brax evaluates once before training (progress[0]) and after each epoch; its
    ``eval/walltime`` metric is cumulative, so the first epoch's eval time is the difference.
    """
    if len(progress) < 2:
        return None
    first, second = progress[0], progress[1]
    return (second["wall_s"] - first["wall_s"]) - (second["eval_s"] - first["eval_s"])


def rlx_overrides(env_name: str, sizes: dict, brax_steps: int) -> list[str]:
    per_iteration = sizes["batch_size"] * sizes["num_minibatches"] * sizes["unroll_length"]
    unroll = per_iteration // sizes["num_envs"]  # the same env steps and samples per update
    iterations = -(-brax_steps // per_iteration)
    chunk_iterations = max(1, iterations // sizes["chunks"])
    return [
        f"env.name={env_name}",
        "env.reset_mode=cached",  # as Brax's AutoResetWrapper: back to each env's first state
        f"env.params.episode_length={COMMON['episode_length']}",
        f"train.num_envs={sizes['num_envs']}",
        f"train.unroll_length={unroll}",
        f"train.num_minibatches={sizes['num_minibatches']}",
        f"train.num_epochs={sizes['num_updates_per_batch']}",
        f"train.total_steps={chunk_iterations * sizes['chunks'] * per_iteration}",
        "train.anneal_learning_rate=false",
        "train.normalize_observations=true",
        f"ppo.learning_rate={COMMON['learning_rate']}",
        f"ppo.entropy_cost={COMMON['entropy_cost']}",
        f"ppo.gamma={COMMON['discounting']}",
        f"ppo.gae_lambda={COMMON['gae_lambda']}",
        f"ppo.clip_epsilon={COMMON['clipping_epsilon']}",
        "ppo.max_grad_norm=1e6",
        "network.policy_hidden=[32,32,32,32]",
        "network.value_hidden=[256,256,256,256,256]",
        "network.activation=swish",
        f"eval.num_envs={sizes['eval_envs']}",
        f"run.chunk_iterations={chunk_iterations}",
        "run.compilation_cache=''",
        "run.tensorboard=false",
        "run.checkpoint=false",
    ]


def run_rlx(env_name: str, seed: int, sizes: dict, out_dir: Path) -> dict:
    import tempfile

    import yaml

    from rlx import envs, runs
    from rlx.config import build as build_lib

    brax_name = env_name.removeprefix("brax:")
    steps = sizes["steps"].get(brax_name, sizes["steps"]["humanoid"])
    base = {"env": {"name": env_name}, "reward": {"weights": {}}}
    if env_name == "humanoid":  # rlx's own env: Brax's reward weights on its terms
        base["reward"]["weights"] = {"forward_velocity": 1.25, "alive": 5.0, "ctrl_cost": -0.1}
    else:  # the adapter with unit weights reproduces Brax's reward
        base["reward"]["weights"] = {t: 1.0 for t in envs.make_raw(env_name).term_names}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(base, f)
    config = build_lib.load(f.name, [*rlx_overrides(env_name, sizes, steps), f"train.seed={seed}"])
    run_dir = out_dir / f"rlx-{env_name.replace(':', '_')}-{seed}-{int(time.time())}"
    start = time.perf_counter()
    summary = runs.train(config, run_dir, show_progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    after_first = rows[1:]
    steps_after = sum(r["env_steps"] - p["env_steps"] for p, r in zip(rows, rows[1:], strict=False))
    return {
        "framework": "rlx",
        "env": env_name,
        "seed": seed,
        "progress": [
            {
                "step": r["env_steps"],
                "wall_s": r["wall_s"],
                "eval_return": r.get("eval/return"),
                "sps": r["train/steps_per_s"],
            }
            for r in rows
        ],
        "train_steps_per_s": steps_after / sum(r["chunk_s"] for r in after_first)
        if after_first
        else None,
        "compile_s": rows[0]["compile_s"] + rows[0]["chunk_s"],
        "trace_s": rows[0].get("trace_s"),
        "xla_compile_s": rows[0]["compile_s"] - rows[0].get("trace_s", 0.0),
        "final_eval_return": summary["final_eval_return"],
        "env_steps": summary["env_steps"],
        "wall_s": time.perf_counter() - start,
        "raw_env_steps_per_s": raw_env_rate(config),
    }


def raw_env_rate(config, unrolls: int = 5) -> float:
    """Env steps/s of the training rollout alone: same wrappers, policy inference, no learning."""
    import jax

    from rlx.config import build as build_lib
    from rlx.learn import acting

    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    state = agent.init(jax.random.key(0), hparams.reward_params)

    @jax.jit
    def collect(state):
        def body(env_state, key):
            env_state, _, _ = acting.collect(
                agent.actor,
                state.params,
                state.obs_stats,
                env_state,
                key,
                agent.static.unroll_length,
            )
            return env_state, None

        return jax.lax.scan(body, state.env_state, jax.random.split(state.key, unrolls))[0]

    jax.block_until_ready(collect(state))  # compile
    start = time.perf_counter()
    jax.block_until_ready(collect(state))
    return unrolls * agent.static.batch_size / (time.perf_counter() - start)


def _child(args) -> None:
    from rlx.core import runtime

    runtime.configure()
    sizes = GPU if args.gpu else CPU
    if args.part == "brax":
        result = run_brax(args.env, args.seed, sizes)
    else:
        result = run_rlx(args.env, args.seed, sizes, Path(args.runs))
    print(json.dumps(result))


def _spawn(part: str, env: str, seed: int, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--part",
        part,
        "--env",
        env,
        "--seed",
        str(seed),
        "--runs",
        args.runs,
    ] + (["--gpu"] if args.gpu else [])
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{part} {env} seed {seed} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{part:5s} {env:24s} seed {seed}: train {result['train_steps_per_s']:,.0f} steps/s, "
        f"compile {result['compile_s']:.1f} s, final eval {result['final_eval_return']:.1f}, "
        f"process {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return result


def _stats(values: list[float]) -> str:
    import numpy as np

    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):,.1f} ± {np.std(values):,.1f}"


def _markdown(result: dict) -> str:
    lines = [
        "# rlx vs Brax PPO",
        "",
        f"Machine: {result['machine']}; {result['versions']}. Sizes: {result['sizes_name']} "
        f"({result['sizes']['num_envs']} envs, batch {result['sizes']['batch_size']} x "
        f"{result['sizes']['num_minibatches']} minibatches x unroll "
        f"{result['sizes']['unroll_length']}, {result['sizes']['num_updates_per_batch']} epochs). "
        f"{result['shim']}. Rerun: `{result['command']}`.",
        "",
        "| env | framework | seeds | train steps/s | compile s | final eval return "
        "| raw env steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        runs = row["runs"]
        lines.append(
            f"| {row['env']} | {row['framework']} | {len(runs)} | "
            f"{_stats([r['train_steps_per_s'] for r in runs])} | "
            f"{_stats([r['compile_s'] for r in runs])} | "
            f"{_stats([r['final_eval_return'] for r in runs])} | "
            f"{_stats([r.get('raw_env_steps_per_s') for r in runs])} |"
        )
    lines += [
        "",
        "Where rlx's compile time goes (means; tracing = Python tracing and lowering, "
        "XLA = compilation; the rest of the compile column is the first chunk's run):",
        "",
    ]
    for row in result["rows"]:
        runs = [r for r in row["runs"] if r.get("trace_s") is not None]
        if row["framework"] == "rlx" and runs:
            lines.append(
                f"- {row['env']}: tracing {_stats([r['trace_s'] for r in runs])} s, "
                f"XLA {_stats([r['xla_compile_s'] for r in runs])} s"
            )
    lines += ["", "Ratios (rlx / Brax, means over seeds):", ""]
    for env, ratio in result["ratios"].items():
        lines.append(f"- {env}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratio.items()))
    lines.append("")
    return "\n".join(lines)


def _ratios(rows: list[dict], env_names: list[str]) -> dict:
    def mean(runs, key):
        return sum(r[key] for r in runs) / len(runs)

    ratios = {}
    for env in env_names:
        by = {r["framework"]: r["runs"] for r in rows if r["env"] in (env, f"brax:{env}")}
        ratios[env] = {
            "train steps/s": mean(by["rlx"], "train_steps_per_s")
            / mean(by["brax"], "train_steps_per_s"),
            "compile": mean(by["rlx"], "compile_s") / mean(by["brax"], "compile_s"),
            "rlx train / raw env rate": mean(by["rlx"], "train_steps_per_s")
            / mean(by["rlx"], "raw_env_steps_per_s"),
        }
    return ratios


def report(path: Path) -> None:
    """Re-derives Brax's compile time from the stored progress and rewrites JSON and Markdown."""
    result = json.loads(path.read_text())
    for row in result["rows"]:
        if row["framework"] == "brax":
            for run in row["runs"]:
                run["compile_s"] = brax_compile_s(run["progress"])
    env_names = [r["env"] for r in result["rows"] if r["framework"] == "brax"]
    result["ratios"] = _ratios(result["rows"], env_names)
    path.write_text(json.dumps(result, indent=1) + "\n")
    path.with_suffix(".md").write_text(_markdown(result))
    print(f"rewrote {path} and {path.with_suffix('.md')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gpu", action="store_true", help="GPU-scale sizes (2048 envs)")
    parser.add_argument("--envs", default="inverted_pendulum,humanoid")
    parser.add_argument("--runs", default="/tmp/rlx-bench-runs")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", default=None)
    parser.add_argument("--report", help="re-report a saved JSON (no runs)")
    parser.add_argument("--skip-own", action="store_true", help="no rlx-humanoid extra row")
    parser.add_argument("--part", choices=("brax", "rlx"), help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        _child(args)
        return
    if args.report:
        report(Path(args.report))
        return
    import brax
    import jax
    import mujoco

    sizes_name = "gpu" if args.gpu else "cpu"
    out = Path(args.out or REPO / "docs" / "bench" / f"bench_vs_brax_{sizes_name}.json")
    rows = []
    for env in args.envs.split(","):
        # Alternate the frameworks seed by seed, so a machine whose speed drifts during the
        # run (shared VMs do) slows both alike.
        brax_runs, rlx_runs = [], []
        for s in range(args.seeds):
            brax_runs.append(_spawn("brax", env, s, args))
            rlx_runs.append(_spawn("rlx", f"brax:{env}", s, args))
        rows += [
            {"env": env, "framework": "brax", "runs": brax_runs},
            {"env": f"brax:{env}", "framework": "rlx", "runs": rlx_runs},
        ]
        if env == "humanoid" and not args.skip_own:
            own = [_spawn("rlx", "humanoid", s, args) for s in range(args.seeds)]
            rows.append({"env": "humanoid (rlx MJX env)", "framework": "rlx", "runs": own})
    ratios = _ratios(rows, args.envs.split(","))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        "versions": f"JAX {jax.__version__}, Brax {brax.__version__}, MuJoCo {mujoco.__version__}",
        "sizes_name": sizes_name,
        "sizes": GPU if args.gpu else CPU,
        "common": COMMON,
        "shim": "Brax's trainer ran with jax.device_put_replicated shimmed (removed in JAX 0.10)",
        "command": " ".join(["python scripts/bench_vs_brax.py", *sys.argv[1:]]),
        "rows": rows,
        "ratios": ratios,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
