"""A Pareto front of two objectives from one vmapped program: the scalarisations w * A + B of
two reward terms, every weight and seed a member of one ``rlx train --sweep`` run.

  python scripts/experiments/pareto.py [--config configs/pendulum.yaml] [--term ctrl_cost]
      [--weights -0.001,-0.01,...] [--seeds 2] [--out docs/experiments/pareto_pendulum]

For each weight of ``--term`` (the other weights as the config has them), the members' final
eval episode sums of the config's primary and of ``--term`` give a point; the non-dominated
points (higher primary, lower term cost) are the front. ``--dynamic`` adds, on the same seeds
and env steps, the config with ``reward.parameterization: dynamic`` (its weights adapted during
training from each objective's improvement rate; ``--dynamic-set KEY=VALUE`` for its settings)
as one more point, to see where it lands against the front. Writes <out>.json, <out>.md and
<out>.png, with the run directories under runs/.
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


def front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (higher first, lower second)."""
    keep = []
    for i, (p, c) in enumerate(points):
        dominated = any(
            (q >= p and d <= c) and (q > p or d < c) for j, (q, d) in enumerate(points) if j != i
        )
        if not dominated:
            keep.append(i)
    return keep


def run_dynamic(args, fixed_dir: Path) -> dict:
    """The dynamic-weights arm: its seeds as members of one program; (primary, term) mean."""
    sets = ["reward.parameterization=dynamic", *args.dynamic_set]
    run_dir = fixed_dir.with_name(fixed_dir.name + "-dynamic")
    start = time.perf_counter()
    runs.train_members(
        ROOT / args.config, [*args.overrides, *sets], args.seeds, [], run_dir, show_progress=False
    )
    wall = time.perf_counter() - start
    plan = json.loads((run_dir / "members.json").read_text())
    finals = []
    for m in plan["members"]:
        rows = [
            json.loads(r) for r in (run_dir / m["dir"] / "metrics.jsonl").read_text().splitlines()
        ]
        finals.append([r for r in rows if r.get("eval/primary_return") is not None][-1])
    names = sorted(k.removeprefix("dynamic/") for k in finals[0] if k.startswith("dynamic/"))
    return {
        "command": " ".join(sets),
        "run_dir": str(run_dir.relative_to(ROOT)),
        "wall_s": wall,
        "primary": float(np.mean([r["eval/primary_return"] for r in finals])),
        args.term: float(np.mean([r[f"eval/terms/{args.term}"] for r in finals])),
        "multipliers": {n: float(np.mean([r[f"dynamic/{n}"] for r in finals])) for n in names},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/pendulum.yaml")
    parser.add_argument("--term", default="ctrl_cost")
    parser.add_argument("--weights", default="0,-0.001,-0.003,-0.01,-0.03,-0.1,-0.3,-1")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs/experiments/pareto_pendulum"))
    parser.add_argument("--dynamic", action="store_true", help="add the dynamic-weights arm")
    parser.add_argument("--dynamic-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    from rlx.core import runtime

    runtime.cpu_devices_for(len(args.weights.split(",")) * args.seeds)  # members side by side
    out = Path(args.out)
    run_dir = ROOT / "runs" / f"pareto-{out.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    sweep = [f"reward.weights.{args.term}={args.weights}"]
    start = time.perf_counter()
    runs.train_members(
        ROOT / args.config, args.overrides, args.seeds, sweep, run_dir, show_progress=False
    )
    wall = time.perf_counter() - start
    plan = json.loads((run_dir / "members.json").read_text())
    per_weight: dict[str, list] = {}
    for m in plan["members"]:
        rows = [
            json.loads(r) for r in (run_dir / m["dir"] / "metrics.jsonl").read_text().splitlines()
        ]
        last = [r for r in rows if r.get("eval/primary_return") is not None][-1]
        weight = m["point"][f"reward.weights.{args.term}"]
        per_weight.setdefault(weight, []).append(
            (last["eval/primary_return"], last[f"eval/terms/{args.term}"])
        )
    weights = list(per_weight)
    points = [tuple(np.mean(per_weight[w], axis=0)) for w in weights]
    on_front = front(points)
    dynamic = run_dynamic(args, run_dir) if args.dynamic else None
    result = {
        "command": " ".join(["python", "scripts/experiments/pareto.py", *sys.argv[1:]]),
        "run_dir": str(run_dir.relative_to(ROOT)),
        "wall_s": wall,
        "seeds": args.seeds,
        "term": args.term,
        "points": [
            {
                "weight": w,
                "primary": p,
                args.term: c,
                "per_seed": per_weight[w],
                "front": i in on_front,
            }
            for i, (w, (p, c)) in enumerate(zip(weights, points, strict=True))
        ],
        "dynamic": dynamic,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# Pareto front: primary return against `{args.term}` ({args.config})",
        "",
        f"`{result['command']}`: {len(weights)} weights x {args.seeds} seeds vmapped in one "
        f"program, {wall:.0f} s. Final eval episode sums, mean over seeds.",
        "",
        f"| weight of `{args.term}` | primary return | `{args.term}` episode sum | on the front |",
        "|---|---|---|---|",
    ]
    for point in result["points"]:
        lines.append(
            f"| {point['weight']} | {point['primary']:.1f} | {point[args.term]:.2f} "
            f"| {'yes' if point['front'] else ''} |"
        )
    if dynamic is not None:
        dominated_by = [
            weights[i]
            for i, (p, c) in enumerate(points)
            if p >= dynamic["primary"] and c <= dynamic[args.term]
        ]
        dynamic["dominated_by"] = dominated_by
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        lines += [
            "",
            f"Dynamic weights (`{dynamic['command']}`, {dynamic['wall_s']:.0f} s): primary "
            f"{dynamic['primary']:.1f}, `{args.term}` {dynamic[args.term]:.2f}, final multipliers "
            + ", ".join(f"{k} {v:.2f}" for k, v in dynamic["multipliers"].items())
            + (
                f"; dominated by the fixed weights {', '.join(map(str, dominated_by))}."
                if dominated_by
                else "; no fixed weight dominates it."
            ),
        ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    costs, primaries = [p[1] for p in points], [p[0] for p in points]
    ax.scatter(costs, primaries, color="C0")
    for w, c, p in zip(weights, costs, primaries, strict=True):
        ax.annotate(w, (c, p), fontsize=7, xytext=(3, 3), textcoords="offset points")
    chosen = sorted((costs[i], primaries[i]) for i in on_front)
    ax.plot(*zip(*chosen, strict=True), color="C1", label="front")
    if dynamic is not None:
        ax.scatter(
            [dynamic[args.term]],
            [dynamic["primary"]],
            color="C3",
            marker="*",
            s=90,
            label="dynamic weights",
        )
    ax.set_xlabel(f"{args.term} (episode sum)")
    ax.set_ylabel("primary return")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"[pareto] {len(on_front)} of {len(weights)} on the front; {out}.md", flush=True)


if __name__ == "__main__":
    main()
