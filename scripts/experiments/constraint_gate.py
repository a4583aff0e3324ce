"""Issue 17's constraint gate: a bound on the mean control cost per step, learned as a Lagrange
multiplier, against the best fixed weight that meets the bound, at equal env steps.

  python scripts/experiments/constraint_gate.py [--config C] [--bound 0.25] [--seeds 4]
      [--steps 200000] [--eval-term T --eval-scale S] [--reuse STAMP]

Both arms are one vmapped program each (``rlx.run.members``): the fixed weights of ``ctrl_cost``
(``--weights``, the config's other weights kept) times the seeds, and the constrained config
(pendulum's own weights plus ``reward.constraints: [{term: ctrl_cost, statistic: mean,
bound}]``) times the same seeds. The final eval gives each member's primary return and mean
control cost per step (the eval episode sum over its length). Gate: the constrained arm's cost
is within 10% of the bound, and its primary return is at least that of the best fixed weight
whose cost meets the bound. Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rlx import runs  # noqa: E402
from rlx.run import rundir  # noqa: E402


def finals(run_dir: Path, term: str, eval_term: str, eval_scale: float) -> list[dict]:
    """Each member's setting, primary return and mean ``term`` per step at its last eval:
    ``eval_scale`` times the eval episode's sum of ``eval_term`` (an env term) over its
    length (the eval logs the env's terms, not those of reward code)."""
    plan = json.loads((run_dir / "members.json").read_text())
    out = []
    for m in plan["members"]:
        rows = rundir.read_rows(run_dir / m["dir"] / "metrics.jsonl")
        last = [r for r in rows if r.get("eval/primary_return") is not None][-1]
        cost = eval_scale * last[f"eval/terms/{eval_term}"] / max(last["eval/length"], 1.0)
        out.append(
            {
                "point": m["point"],
                "seed": m["seed"],
                "primary": last["eval/primary_return"],
                "cost_per_step": cost,
                "multiplier": last.get(f"constraint/{term}/multiplier"),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/pendulum.yaml")
    parser.add_argument("--term", default="ctrl_cost")
    parser.add_argument("--bound", type=float, default=0.25)
    parser.add_argument("--step-size", type=float, default=0.05)
    parser.add_argument("--kp", type=float, default=0.0, help="PID proportional gain")
    parser.add_argument("--kd", type=float, default=0.0, help="PID derivative gain")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (train.seed)")
    parser.add_argument(
        "--weights", default="-0.001,-0.01,-0.03,-0.1,-0.2,-0.3,-0.5,-0.6,-0.7,-0.8,-1,-2"
    )
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument(
        "--stochastic-eval",
        action="store_true",
        help="evaluate both arms with sampled actions (eval.deterministic=false): the policy "
        "whose cost the multiplier bounds, rather than its mode",
    )
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument(
        "--eval-term",
        help="the env term the eval measures the cost by (default: --term); for a code term, "
        "the env term it is made from, with --eval-scale",
    )
    parser.add_argument("--eval-scale", type=float, default=1.0)
    parser.add_argument(
        "--reuse",
        metavar="STAMP",
        help="read the runs/constraint-gate-{fixed,constrained}-STAMP directories an earlier "
        "invocation trained instead of training them again (one that is missing is trained)",
    )
    parser.add_argument("--out", default=str(ROOT / "docs/experiments/constraint_gate_pendulum"))
    args = parser.parse_args()
    from rlx.core import runtime

    runtime.cpu_devices_for(args.seeds * 2)
    stamp = args.reuse or time.strftime("%Y%m%d-%H%M%S")
    eval_term = args.eval_term or args.term
    base = [f"train.total_steps={args.steps}", "run.tensorboard=false", f"train.seed={args.seed}"]
    base += ["eval.deterministic=false"] if args.stochastic_eval else []
    fixed_dir = ROOT / "runs" / f"constraint-gate-fixed-{stamp}"
    constrained_dir = ROOT / "runs" / f"constraint-gate-constrained-{stamp}"
    dirs = {"fixed": fixed_dir, "constrained": constrained_dir}
    reused = {arm for arm, d in dirs.items() if args.reuse and d.is_dir()}
    start = time.perf_counter()
    sweep = [f"reward.weights.{args.term}={args.weights}"]
    if "fixed" not in reused:
        runs.train_members(
            ROOT / args.config, base, args.seeds, sweep, fixed_dir, show_progress=False
        )
    fixed_s = time.perf_counter() - start
    spec = {"term": args.term, "statistic": "mean", "bound": args.bound}
    constraint = json.dumps([spec | {"step_size": args.step_size, "kp": args.kp, "kd": args.kd}])
    start = time.perf_counter()
    if "constrained" not in reused:
        runs.train_members(
            ROOT / args.config,
            [*base, f"reward.constraints={constraint}"],
            args.seeds,
            [],
            constrained_dir,
            show_progress=False,
        )
    constrained_s = time.perf_counter() - start
    # a reused run's own wall time (its metrics' last row)
    if "fixed" in reused:
        fixed_s = rundir.read_rows(fixed_dir / "metrics.jsonl")[-1]["wall_s"]
    if "constrained" in reused:
        constrained_s = rundir.read_rows(constrained_dir / "metrics.jsonl")[-1]["wall_s"]
    fixed = finals(fixed_dir, args.term, eval_term, args.eval_scale)
    by_weight: dict[str, list] = {}
    for f in fixed:
        by_weight.setdefault(f["point"][f"reward.weights.{args.term}"], []).append(f)
    table = []
    for weight, group in by_weight.items():
        primary = float(np.mean([r["primary"] for r in group]))
        cost = float(np.mean([r["cost_per_step"] for r in group]))
        table.append(
            {
                "weight": weight,
                "primary": primary,
                "cost_per_step": cost,
                "meets_bound": cost <= args.bound,
            }
        )
    feasible = [row for row in table if row["meets_bound"]]
    best = max(feasible, key=lambda row: row["primary"]) if feasible else None
    con = finals(constrained_dir, args.term, eval_term, args.eval_scale)
    con_primary = float(np.mean([r["primary"] for r in con]))
    con_cost = float(np.mean([r["cost_per_step"] for r in con]))
    unconstrained = table[0]
    gate = {
        "unconstrained_violation": unconstrained["cost_per_step"] / args.bound,
        "bound_holds_within_10pct": con_cost <= 1.1 * args.bound,
        "primary_at_least_best_feasible_fixed": best is not None and con_primary >= best["primary"],
    }
    result = {
        "command": " ".join(["python", "scripts/experiments/constraint_gate.py", *sys.argv[1:]]),
        "bound": args.bound,
        "seeds": args.seeds,
        "env_steps": args.steps,
        "eval": "sampled actions" if args.stochastic_eval else "mode action",
        "fixed": table,
        "best_feasible_fixed": best,
        "constrained": {"primary": con_primary, "cost_per_step": con_cost, "per_seed": con},
        "gate": gate,
        "wall_s": {"fixed_sweep": fixed_s, "constrained": constrained_s},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# Constraint gate: mean `{args.term}` per step <= {args.bound} ({args.config})",
        "",
        f"`{result['command']}`: {args.seeds} seeds from {args.seed}, {args.steps:,} env steps "
        f"per learner, multiplier step {args.step_size}, kp {args.kp}, kd {args.kd}; each "
        f"arm one vmapped program ({fixed_s:.0f} s and {constrained_s:.0f} s). Final eval "
        f"({result['eval']}), mean over seeds.",
        "",
        f"| arm | primary return | mean `{args.term}` per step | meets the bound |",
        "|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| fixed weight {row['weight']} | {row['primary']:.1f} | "
            f"{row['cost_per_step']:.3f} | {'yes' if row['meets_bound'] else 'no'} |"
        )
    multipliers = [r["multiplier"] for r in con if r["multiplier"] is not None]
    meets = "yes" if con_cost <= args.bound else "no"
    if meets == "no" and gate["bound_holds_within_10pct"]:
        meets = "within 10%"
    lines.append(
        f"| constrained (multiplier {np.mean(multipliers):.3f}) | {con_primary:.1f} | "
        f"{con_cost:.3f} | {meets} |"
    )
    lines += [
        "",
        f"The unconstrained weight ({unconstrained['weight']}) violates the bound "
        f"{gate['unconstrained_violation']:.1f}x. Bound held within 10%: "
        f"{gate['bound_holds_within_10pct']}. Primary >= the best fixed weight meeting the bound "
        f"({best['weight'] if best else 'none'}, {best['primary'] if best else float('nan'):.1f}): "
        f"{gate['primary_at_least_best_feasible_fixed']}.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
