"""Issue 17's push gate: does ``configs/push.yaml`` learn to push the puck onto its goal, and in
how much CPU time?

  python scripts/experiments/push_learning.py [--config configs/push.yaml] [--seeds 1]
      [--run-dir runs/push-learning] [--out docs/experiments/push_learning] [key=value ...]

Trains the config with ``rlx train`` (``--seeds N`` vmapped in one program when N > 1) in
``--run-dir``; a run directory left by a stopped invocation is resumed (``rlx train --resume``),
so the experiment survives an interrupted session. Then reads every eval row of each seed's
``metrics.jsonl``: ``eval/success`` is the share of the ``eval.num_envs`` eval episodes whose
last step has the puck within ``env.params.success_threshold`` of the goal. Gate: success >=
0.8 (mean over seeds) at the last eval within 30 minutes of the run's wall time (each row's
``wall_s``) on the 2-core CPU.
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
GATE_SUCCESS = 0.8
GATE_WALL_S = 30 * 60


def eval_rows(seed_dir: Path) -> list[dict]:
    """The eval rows of one run directory's metrics.jsonl, in order."""
    from rlx.run import rundir

    rows = rundir.read_rows(seed_dir / "metrics.jsonl")
    return [r for r in rows if r.get("eval/success") is not None]


def seed_dirs(run_dir: Path) -> list[Path]:
    """One directory per seed: the members' (``--seeds`` > 1) or the run's own."""
    from rlx.run import sweep

    if sweep.is_members_run(run_dir):
        return [run_dir / m.directory for m in sweep.read_plan(run_dir)[2]]
    return [run_dir]


def _relative(path: Path) -> str:
    """``path`` relative to the repo when it is inside it (no checkout's absolute path)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _fmt(value: float | None) -> str:
    return "none (no eval that early)" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/push.yaml")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "push-learning"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "experiments" / "push_learning"))
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds for rlx train")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value config overrides")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    rlx = [sys.executable, "-m", "rlx", "train"]
    resumed = (run_dir / "config.yaml").is_file()
    if resumed:
        command = [*rlx, "--resume", str(run_dir)]
    else:
        command = [*rlx, str(ROOT / args.config), "--run-dir", str(run_dir), *args.overrides]
        command += ["--seeds", str(args.seeds)] if args.seeds > 1 else []
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, timeout=args.timeout)
    wall_s = time.perf_counter() - start
    seeds = []
    for seed_dir in seed_dirs(run_dir):
        rows = eval_rows(seed_dir)
        summary = json.loads((seed_dir / "summary.json").read_text())
        seeds.append(
            {
                "dir": str(seed_dir.relative_to(run_dir)),
                "env_steps": [r["env_steps"] for r in rows],
                "success": [r["eval/success"] for r in rows],
                "object_goal_distance_per_step": [
                    r["eval/terms/object_goal_distance"] / max(r["eval/length"], 1) for r in rows
                ],
                "wall_s": [r["wall_s"] for r in rows],
                "final_success": rows[-1]["eval/success"],
                # the last eval inside the gate's budget (wall_s: since the run's start)
                "success_within_30_min": next(
                    (r["eval/success"] for r in reversed(rows) if r["wall_s"] <= GATE_WALL_S),
                    None,
                ),
                # the summary without its absolute run_dir (the seed's dir is above)
                "summary": {k: v for k, v in summary.items() if k != "run_dir"},
            }
        )
    final = float(np.mean([s["final_success"] for s in seeds]))
    within = [s["success_within_30_min"] for s in seeds]
    within = float(np.mean(within)) if None not in within else None
    config_text = (run_dir / "config.yaml").read_text()
    result = {
        "command": " ".join(["python", "scripts/experiments/push_learning.py", *sys.argv[1:]]),
        "config": args.config,
        "overrides": args.overrides,
        "run_dir": _relative(run_dir),
        "resumed": resumed,
        "wall_s_this_invocation": wall_s,
        "final_success_mean": final,
        "success_within_30_min_mean": within,
        "gate": {
            "success_at_least_0.8_within_30_min": within is not None and within >= GATE_SUCCESS
        },
        "seeds": seeds,
        "run_config": config_text,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    first = seeds[0]
    from rlx.config import build as build_lib

    eval_envs = build_lib.load(run_dir / "config.yaml").eval.num_envs
    lines = [
        f"# Push: eval success over training ({args.config})",
        "",
        f"`{result['command']}`: {len(seeds)} seed(s), {first['env_steps'][-1]:,} env steps, "
        f"{wall_s:.0f} s wall on this invocation"
        + (" (resumed: the run's earlier part is not in that time)" if resumed else "")
        + f". Success: the share of the eval episodes ({eval_envs} per eval) whose last step has "
        "the puck within the success threshold of its goal.",
        "",
        "| env steps | wall s (first seed dir) | "
        + " | ".join(f"success, `{s['dir']}`" for s in seeds)
        + " |",
        "|---|---|" + "---|" * len(seeds),
    ]
    for i, steps in enumerate(first["env_steps"]):
        cells = " | ".join(f"{s['success'][i]:.3f}" for s in seeds if i < len(s["success"]))
        lines.append(f"| {steps:,} | {first['wall_s'][i]:.0f} | {cells} |")
    lines += [
        "",
        f"Final eval success, mean over seeds: **{final:.3f}**; at the last eval within 30 "
        f"minutes of the run's wall time: **{_fmt(within)}** (gate >= {GATE_SUCCESS} there: "
        f"{result['gate']['success_at_least_0.8_within_30_min']}).",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
