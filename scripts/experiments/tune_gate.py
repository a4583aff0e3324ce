"""The equal-compute gate of ``rlx tune`` (``rlx.lab.tune_gate``): arms A (expert), B (start),
S (a sweep of K weightings in the tuner's box, picked by training return), T (``rlx tune
--budget K``) and T1 (``--budget 1``), each arm one program over its seeds, resumable.

  python scripts/experiments/tune_gate.py --case halfcheetah [--seeds 4] [--seed-start 16] \\
      [--arms A B S T T1] [--root runs/tune_gate] [--out docs/experiments/tune_gate.json] \\
      [overrides ...]

Arms that ``--out`` already holds for the same seeds and overrides are kept, not run again
(``--rerun`` runs them); a tune arm is kept only under the plan it was measured with (when
``rlx tune``'s settings change it runs again, and its earlier record moves to the case's
``earlier_attempts``). Writes (merges) ``--out`` as each arm finishes: ``{"cases": {case:
{"K", "seeds", "steps_per_learner", "arms": {arm: {mean, ci, per_seed, total_env_steps,
...}}}}}``; an arm stopped part-way resumes from ``--root/<case>/<arm>`` on the next call.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Seeds 0-15 were used while the tuner's settings were chosen (docs/experiments): the gate's
# seeds start after them.
FRESH_SEED_START = 16

# K = 4 for the humanoid cases, 8 for the others (issue 37). A is the expert's weighting, B the
# start the tuner is given (the expert's own in the do-no-harm cases). A case's overrides apply
# to every arm: the humanoid cases step MuJoCo's C engine (the same model and terms as MJX's
# (docs/envs.md), about 3x faster to train on a CPU: docs/experiments/c_backend_learning.json).
CASES = {
    "halfcheetah": dict(
        config="configs/meta/halfcheetah_ctrl.yaml",
        expert={"reward_run": 1.0, "reward_ctrl": 1.0},  # Brax's weights
        start={"reward_run": 1.0, "reward_ctrl": 40.0},  # the control cost at 4x BARFI's bad
        learn=("reward_ctrl",),
        budget=8,
    ),
    "walker2d": dict(
        config="configs/meta/walker2d_alive.yaml",
        expert={"reward_forward": 1.0, "reward_healthy": 1.0, "reward_ctrl": 1.0},
        start={"reward_forward": 1.0, "reward_healthy": 100.0, "reward_ctrl": 1.0},
        learn=("reward_healthy", "reward_ctrl"),
        budget=8,
    ),
    "humanoid_poor": dict(
        config="configs/meta/humanoid_poor_weights.yaml",
        expert={"forward_velocity": 0.125, "alive": 0.5, "ctrl_cost": -0.01},
        start={"forward_velocity": 0.125, "alive": 0.05, "ctrl_cost": -0.5},
        learn=("alive", "ctrl_cost"),
        budget=4,
        # one run as long as the earlier humanoid gates' (the config's 200k is a smoke size)
        overrides=("train.total_steps=1000000", "env.params.impl=c"),
    ),
    "humanoid_lure": dict(
        config="configs/meta/humanoid_run_lure.yaml",
        expert={"forward_velocity": 0.125, "alive": 0.5, "ctrl_cost": -0.01},
        start={
            "forward_velocity": 0.125,
            "alive": 0.5,
            "ctrl_cost": -0.01,
            "standing": 1.0,
            "upright": 1.0,
        },
        learn=("standing", "upright"),
        budget=4,
        overrides=("env.params.impl=c",),
    ),
    # Brax's ant with its survive bonus and control cost all but off (0.01 of Brax's): two
    # misweighted terms learned at once.
    "ant": dict(
        config="configs/meta/ant_off.yaml",
        expert={
            "reward_forward": 1.0,
            "reward_survive": 1.0,
            "reward_ctrl": 1.0,
            "reward_contact": 1.0,
        },
        start={
            "reward_forward": 1.0,
            "reward_survive": 0.01,
            "reward_ctrl": 0.01,
            "reward_contact": 1.0,
        },
        learn=("reward_survive", "reward_ctrl"),
        budget=8,
    ),
}
# Do no harm: the expert's own weights as the start (A = B).
for name in ("halfcheetah", "walker2d"):
    CASES[f"{name}_expert"] = CASES[name] | {"start": CASES[name]["expert"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seed-start", type=int, default=FRESH_SEED_START)
    parser.add_argument("--arms", nargs="+", default=["A", "B", "S", "T", "T1"])
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "tune_gate")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/experiments/tune_gate.json")
    parser.add_argument(
        "--rerun", action="store_true", help="run the arms again that --out already holds"
    )
    args, overrides = parser.parse_known_args(argv)
    from rlx.core import runtime

    runtime.configure()
    from rlx.lab import tune_gate

    spec = dict(CASES[args.case])
    spec["config"] = str(ROOT / spec["config"])
    overrides = [*spec.pop("overrides", ()), *overrides]
    case = tune_gate.Case(**spec)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    root = args.root / args.case
    command = _command(argv or sys.argv[1:])

    def write(arm: str, result: dict) -> None:
        """Merge one finished arm into ``--out`` at once: a long case keeps what it did."""
        data = json.loads(args.out.read_text()) if args.out.exists() else {"cases": {}}
        entry = data["cases"].setdefault(args.case, {"arms": {}})
        entry |= {"K": case.budget, "seeds": seeds, "config": CASES[args.case]["config"],
                  "overrides": overrides}  # fmt: skip
        earlier = entry["arms"].get(arm)
        if earlier is not None and earlier.get("plan") != result.get("plan"):
            # a tune arm run again under a new plan: its earlier attempt stays on record
            entry.setdefault("earlier_attempts", []).append({"arm": arm} | earlier)
        entry["arms"][arm] = {"command": command} | result  # an arm taken over keeps its own
        if arm in "AB" or "steps_per_learner" not in entry:
            entry["steps_per_learner"] = result["steps_per_learner"]
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"[tune_gate] {args.case}: arm {arm} done, mean {result['mean']:.1f}", flush=True)

    known = {}  # arms this file holds for the same seeds and overrides: not run again
    if args.out.exists() and not args.rerun:
        cases = json.loads(args.out.read_text())["cases"]
        # a do-no-harm case's A is its parent case's (the same runs)
        parent = args.case.removesuffix("_expert")
        for name, arms in ((parent, ("A",)), (args.case, args.arms)):
            entry = cases.get(name, {})
            if entry.get("seeds") == seeds and entry.get("overrides", []) == overrides:
                known |= {a: r for a, r in entry["arms"].items() if a in arms and a in args.arms}
        own = cases.get(args.case, {}).get("arms", {})
        for arm in [a for a in known if a not in own]:  # the parent's A: recorded here too
            write(arm, known[arm] | {"same_as": f"{parent} arm {arm}"})
    if known:
        print(f"[tune_gate] {args.case}: arms {sorted(known)} already in {args.out}", flush=True)
    arms = tune_gate.run_case(case, seeds, root, tuple(args.arms), overrides, on_arm=write,
                              known=known, show_progress=False)  # fmt: skip
    missing = [a for a in args.arms if a not in arms]
    print(f"[tune_gate] {args.case}: done {sorted(arms)}; not finished {missing}", flush=True)
    return 0 if not missing else 1


def _command(argv: list[str]) -> str:
    """The command to record: this script by its path in the repo, without the options that
    only say where files go (``--root``, ``--out``), wherever the running copy lives."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--root", "--out"):
            skip = True
        elif not arg.startswith(("--root=", "--out=")):
            kept.append(arg)
    return " ".join(["python", "scripts/experiments/tune_gate.py", *map(shlex.quote, kept)])


if __name__ == "__main__":
    sys.exit(main())
