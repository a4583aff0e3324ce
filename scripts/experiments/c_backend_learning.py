"""Learning on MuJoCo's C engine against MJX: the same config, seeds and env steps, each seed
one ``rlx train`` run per backend, resumable. (Seeds are separate runs: a 4-seed MJX
humanoid_stand members run hung twice here after its compile, every XLA worker idle.)

  python scripts/experiments/c_backend_learning.py [--cases humanoid_stand reach] \\
      [--seeds 4] [--seed-start 4] [--root runs/c_learning] \\
      [--out docs/experiments/c_backend_learning.json]

Per case and backend (``env.params.impl`` ``jax`` = MJX, ``c``): every seed's final eval primary
return, their mean and 95% bootstrap interval. The check: the C backend's mean falls within the
MJX backend's interval (and the reverse is reported too). A stopped arm resumes on the next call
(``rlx train --resume``); a run that is done is read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CASES = {"humanoid_stand": "configs/humanoid_stand.yaml", "reach": "configs/reach.yaml"}
IMPLS = ("jax", "c")
STALL_RETRIES = 3  # resumes after a stall
STALL_S = 600  # run.stall_timeout_s of each run


def run_seed(config: str, impl: str, seed: int, run_dir: Path) -> dict:
    """The seed's summary, running or resuming it first when it is not done (a stall, the CPU
    hang of docs/troubleshooting.md, is ended by the watchdog and resumed)."""
    from rlx.lab.train_runs import train_or_resume

    start = [str(ROOT / config), f"env.params.impl={impl}", f"train.seed={seed}",
             f"run.stall_timeout_s={STALL_S}"]  # fmt: skip
    return train_or_resume(run_dir, start, ROOT, stall_retries=STALL_RETRIES)


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
            seeds = range(args.seed_start, args.seed_start + args.seeds)
            summaries = [
                run_seed(CASES[case], impl, s, args.root / case / impl / f"seed{s}") for s in seeds
            ]
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
