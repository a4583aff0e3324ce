"""The per-setting table of a members run: sweep.json, sweep.md and sweep.png.

Each setting's seeds give a final eval primary return (the task's own objective, the same
whatever the reward weights) and a final eval return (the reward the setting trained on):
their means and 95% bootstrap intervals over the seeds. Settings are ranked by the primary
return when the sweep changes the reward (a weighted return is not comparable across
weightings: halving a weight halves it by construction), else by the return.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlx.core.stats import bootstrap_ci

# What the table ranks by: (the summary key of each seed's value, its column name)
PRIMARY = ("final_eval_primary_return", "primary")
RETURN = ("final_eval_return", "return")
TITLES = {"primary": "final eval primary return", "return": "final eval return"}


def ranked_by(members) -> tuple[str, str]:
    """PRIMARY when some member's setting changes the reward section, else RETURN."""
    changes_reward = any(key.startswith("reward.") for m in members for key, _ in m.point)
    return PRIMARY if changes_reward else RETURN


def _stats(values: list) -> dict:
    """{values, mean, ci95} of a setting's per-seed values (no mean while one is missing)."""
    out = {"values": values}
    if values and all(v is not None for v in values):
        out |= {"mean": float(np.mean(values)), "ci95": bootstrap_ci(values)}
    return out


def settings_table(members, summaries: list[dict]) -> list[dict]:
    """Per setting, best first: its seeds, the primary return's and the return's per-seed
    values, means and 95% CIs, its rank and what it is ranked by."""
    key, name = ranked_by(members)
    table = []
    for label in dict.fromkeys(m.label for m in members):
        idx = [i for i, m in enumerate(members) if m.label == label]
        entry = {"setting": label, "seeds": [members[i].seed for i in idx], "ranked_by": name}
        entry["primary"] = _stats([summaries[i][PRIMARY[0]] for i in idx])
        entry["return"] = _stats([summaries[i][RETURN[0]] for i in idx])
        table.append(entry)
    table.sort(key=lambda e: -e[name].get("mean", -np.inf))
    for rank, entry in enumerate(table, 1):
        entry["rank"] = rank
    return table


def _cell(stats: dict) -> tuple[str, str]:
    if "mean" not in stats:
        return "-", "-"
    low, high = stats["ci95"]
    return f"{stats['mean']:.2f}", f"[{low:.2f}, {high:.2f}]"


def settings_markdown(table: list[dict]) -> str:
    """The table as markdown, ranked; the ranking quantity's columns first."""
    if not table:
        return ""
    first = table[0]["ranked_by"]
    second = "return" if first == "primary" else "primary"
    title = TITLES
    lines = [
        f"Ranked by the {title[first]} (mean over seeds, 95% bootstrap CI).",
        "",
        f"| rank | setting | seeds | {title[first]} | 95% CI | per seed | {title[second]} "
        "| 95% CI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        mean, ci = _cell(e[first])
        each = ", ".join("-" if v is None else f"{v:.2f}" for v in e[first]["values"])
        other_mean, other_ci = _cell(e[second])
        lines.append(
            f"| {e['rank']} | {e['setting']} | {len(e['seeds'])} | {mean} | {ci} | {each} "
            f"| {other_mean} | {other_ci} |"
        )
    return "\n".join(lines) + "\n"


def best_line(table: list[dict]) -> str:
    """One line naming the best setting by the ranking quantity, with its interval."""
    best = table[0]
    name = best["ranked_by"]
    mean, ci = _cell(best[name])
    return f"best setting: {best['setting']}, {TITLES[name]} {mean} {ci} over its seeds"


def plot_settings(table: list[dict], path: Path) -> None:
    """The ranking quantity per setting, in rank order: each seed a dot, the mean with its
    95% CI as a bar."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"[rlx] {path.name} not drawn: matplotlib is not installed", flush=True)
        return
    name = table[0]["ranked_by"] if table else "return"
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(table) + 2), 3.5))
    for x, e in enumerate(table):
        stats = e[name]
        values = [v for v in stats["values"] if v is not None]
        ax.scatter([x] * len(values), values, color="C0", alpha=0.5, s=14)
        if "mean" in stats:
            low, high = stats["ci95"]
            ax.errorbar(
                [x],
                [stats["mean"]],
                yerr=[[stats["mean"] - low], [high - stats["mean"]]],
                fmt="o",
                color="C1",
                capsize=4,
            )
    ax.set_xticks(range(len(table)), [e["setting"] for e in table], rotation=20, ha="right")
    ax.set_ylabel(TITLES[name])
    ax.set_title(f"ranked by the {TITLES[name]} (mean, 95% CI over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
