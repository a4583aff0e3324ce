"""The report of an ``rlx tune`` run: report.md and report.png.

What a user needs to trust tuned weights: how each weight moved (``weights/<term>`` rows of
metrics.jsonl: a population logs its best member's), the primary return's curve (the best
member's for a population), the chosen policy's per-term episode sums and episode length
(a hack shows there: a bonus farmed for 1000 steps while the primary stays flat), the env
steps spent, and with ``--compare`` the start weighting's primary return at the same env steps
per learner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlx.run import rundir
from rlx.ship import policy


def chosen_weights(restored: policy.Restored, learn: tuple[str, ...]) -> tuple[dict, Any]:
    """({term: effective weight} of the learned terms of the chosen learner, its member index
    or None): ``restored`` is the run's newest checkpoint's learner (``policy.restore``: a
    population's best member by fitness)."""
    decoded = restored.agent.reward_fn.weights(restored.hparams.reward_params, None)
    return {name: float(decoded[name]) for name in learn}, restored.member


def _curve(rows: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]


def _primary_key(rows: list[dict]) -> str:
    """The best member's eval primary return where the run logs one, else the learner's."""
    best = "eval/primary_return_best_member"
    return best if any(best in r for r in rows) else "eval/primary_return"


def figures(restored: policy.Restored, the_plan, out: dict) -> dict[str, Any]:
    """The report's numbers: the chosen policy's eval (primary return, length, each term's
    episode sum: mean over ``eval.num_envs`` episodes), the env steps spent, the compare run's
    final primary return."""
    evaluated = policy.evaluate(restored)
    terms = {
        k.removeprefix("terms/"): v["mean"] for k, v in evaluated.items() if k.startswith("terms/")
    }
    result = {
        "primary_return": evaluated["primary_return"]["mean"],
        "episode_length": evaluated["length"]["mean"],
        "term_episode_sums": terms,
        "members": the_plan.members,
        "env_steps_per_learner": the_plan.env_steps_per_learner,
        "total_env_steps": the_plan.total_env_steps,
        "budget_env_steps": int(the_plan.budget * the_plan.run_env_steps),
    }
    if "compare" in out:
        result["compare_primary_return"] = out["compare"]["final_eval_primary_return"]
    return result


def write(run_dir: Path, restored: policy.Restored, the_plan, out: dict) -> dict[str, Any]:
    """Writes report.md and report.png into ``run_dir``; returns the figures."""
    found = figures(restored, the_plan, out)
    rows = rundir.read_rows(run_dir / "metrics.jsonl")
    compare_rows = (
        rundir.read_rows(run_dir / "compare" / "metrics.jsonl") if "compare" in out else []
    )
    (run_dir / "report.md").write_text(_markdown(the_plan, out, found))
    _plot(run_dir / "report.png", the_plan, rows, compare_rows, found)
    return found


def _markdown(the_plan, out: dict, found: dict) -> str:
    weights = out["weights"]
    who = "the learner" if out["chosen"] is None else f"member {out['chosen']}"
    lines = [
        "# rlx tune",
        "",
        f"Method: {the_plan.method}, {the_plan.members} learner(s) x "
        f"{the_plan.env_steps_per_learner:,} env steps = {the_plan.total_env_steps:,} env steps "
        f"in all (budget: {the_plan.budget:g} x one run's {the_plan.run_env_steps:,} = "
        f"{found['budget_env_steps']:,}).",
        "",
        "| term | tuned weight |",
        "|---|---|",
        *[f"| {name} | {value:.4g} |" for name, value in weights.items()],
        "",
        f"Chosen policy ({who}), "
        f"evaluated: primary return {found['primary_return']:.2f}, episode length "
        f"{found['episode_length']:.1f}.",
    ]
    if "compare_primary_return" in found:
        lines.append(
            f"The start weighting, trained for the same env steps per learner: primary return "
            f"{found['compare_primary_return']:.2f} (`compare/`)."
        )
    lines += ["", "| term | episode sum (unweighted) |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in found["term_episode_sums"].items()]
    lines += ["", "`rlx train tuned.yaml` trains the tuned weights as a plain run.", ""]
    return "\n".join(lines)


def _plot(path: Path, the_plan, rows, compare_rows, found) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"[rlx] {path.name} not drawn: matplotlib is not installed", flush=True)
        return
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for name in the_plan.learn:
        points = _curve(rows, f"weights/{name}")
        if points:
            axes[0].plot(*zip(*points, strict=True), "o-", ms=3, label=name)
    axes[0].set_yscale("symlog", linthresh=1e-3)  # weights of either sign
    axes[0].set_title("tuned weights (chosen learner)")
    axes[0].legend(fontsize=7)
    for run_rows, key, label, color in (
        (rows, _primary_key(rows), "tuned", "C0"),
        (compare_rows, "eval/primary_return", "start weighting", "C1"),
    ):
        points = _curve(run_rows, key)
        if points:  # markers: a short run has one or two eval points
            axes[1].plot(*zip(*points, strict=True), "o-", color=color, label=f"{label}, eval")
        points = _curve(run_rows, "train/primary_return")
        if points:
            axes[1].plot(*zip(*points, strict=True), color=color, alpha=0.35, lw=1,
                         label=f"{label}, training (mean over learners)")  # fmt: skip
    axes[1].set_title("primary return")
    axes[1].legend(fontsize=7)
    for ax in axes[:2]:
        ax.set_xlabel("env steps per learner")
    sums = found["term_episode_sums"]
    axes[2].barh(list(sums), list(sums.values()), color="C2")
    axes[2].set_title(f"chosen policy: term episode sums (length {found['episode_length']:.0f})")
    axes[2].tick_params(axis="y", labelsize=7)
    fig.suptitle(
        f"rlx tune: {the_plan.method}, {the_plan.members} learner(s), "
        f"{the_plan.total_env_steps:,} env steps in all",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
