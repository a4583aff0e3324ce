"""Learning on MuJoCo's C engine against MJX: the same config, seeds and env steps, each backend
one ``rlx train --seeds N`` run (seeds vmapped), resumable.

  python scripts/experiments/c_backend_learning.py [--cases humanoid_stand reach] \\
      [--seeds 4] [--seed-start 4] [--root runs/c_learning] \\
      [--out docs/experiments/c_backend_learning.json]

Per case and backend (``env.params.impl`` ``jax`` = MJX, ``c``): every seed's final eval primary
return, their mean and 95% bootstrap interval. The check: the C backend's mean falls within the
MJX backend's interval (and the reverse is reported too). A stopped arm resumes on the next call
(``rlx train --resume``); an arm that is done is read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CASES = {"humanoid_stand": "configs/humanoid_stand.yaml", "reach": "configs/reach.yaml"}
IMPLS = ("jax", "c")
STALL_EXIT, STALL_RETRIES = 4, 3  # rlx.core.watchdog's exit status, and resumes after one


def run_arm(config: str, impl: str, seeds: int, seed_start: int, run_dir: Path) -> list[dict]:
    """The arm's members' summaries, running or resuming it first when it is not done."""
    summary = run_dir / "summary.json"
    for _ in range(STALL_RETRIES + 1):
        if summary.exists() and json.loads(summary.read_text()).get("status") == "completed":
            break
        if (run_dir / "members.json").exists():
            argv = ["train", "--resume", str(run_dir)]
        else:
            argv = ["train", str(ROOT / config), f"env.params.impl={impl}",
                    f"train.seed={seed_start}", "--seeds", str(seeds),
                    "--run-dir", str(run_dir)]  # fmt: skip
        code = subprocess.run([sys.executable, "-m", "rlx", *argv, "--no-progress"], cwd=ROOT)
        if code.returncode not in (0, STALL_EXIT):
            raise SystemExit(f"{config} impl {impl}: rlx exited {code.returncode}")
        # a stall (the CPU hang of docs/troubleshooting.md): the watchdog ended it; resume
    else:
        raise SystemExit(f"{config} impl {impl}: stalled {STALL_RETRIES + 1} times")
    plan = json.loads((run_dir / "members.json").read_text())
    return [json.loads((run_dir / m["dir"] / "summary.json").read_text()) for m in plan["members"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seed-start", type=int, default=4)
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "c_learning")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs/experiments/c_backend_learning.json"
    )
    args = parser.parse_args(argv)
    from rlx.core.stats import bootstrap_ci

    data = json.loads(args.out.read_text()) if args.out.exists() else {"cases": {}}
    command = "python scripts/experiments/c_backend_learning.py " + " ".join(argv or sys.argv[1:])
    for case in args.cases:
        entry = {"config": CASES[case], "reference": "jax", "arms": {}, "command": command}
        for impl in IMPLS:
            summaries = run_arm(CASES[case], impl, args.seeds, args.seed_start,
                                args.root / case / impl)  # fmt: skip
            finals = [s["final_eval_primary_return"] for s in summaries]
            steps = summaries[0]["env_steps"]
            entry["arms"][impl] = {
                "mean": sum(finals) / len(finals),
                "ci": bootstrap_ci(finals),
                "per_seed": finals,
                "learners_per_seed": 1,
                "steps_per_learner": steps,
                "total_env_steps": steps,
                "wall_s": max(s.get("wall_s", 0.0) for s in summaries),
            }
        c, mjx = entry["arms"]["c"], entry["arms"]["jax"]
        entry |= {
            "seeds": list(range(args.seed_start, args.seed_start + args.seeds)),
            "steps_per_learner": mjx["steps_per_learner"],
            "c_mean_within_mjx_ci": mjx["ci"][0] <= c["mean"] <= mjx["ci"][1],
            "mjx_mean_within_c_ci": c["ci"][0] <= mjx["mean"] <= c["ci"][1],
        }
        data["cases"][case] = entry
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        within = entry["c_mean_within_mjx_ci"]
        print(f"[c_backend_learning] {case}: MJX {mjx['mean']:.2f} {mjx['ci']}, "
              f"C {c['mean']:.2f} {c['ci']}; C within MJX's interval: {within}",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
