"""The experiment files and what is written about them agree: ``docs/experiments/README.md``
indexes every JSON file there and equals a fresh ``python scripts/index_experiments.py``
(``rlx.lab.index``), and each row of the README's results table matches the file it links."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlx.lab import index

REPO = Path(__file__).resolve().parent.parent
FOLDER = REPO / "docs" / "experiments"
RESULTS = "## What meta-learned reward weights give you today"


def test_every_experiment_file_is_indexed():
    files = sorted(p.name for p in FOLDER.glob("*.json"))
    assert len(files) >= 50
    page = (FOLDER / "README.md").read_text()
    assert sorted(set(index.cited_files(page))) == files


def test_the_index_is_a_fresh_regeneration():
    page = (FOLDER / "README.md").read_text()
    assert page == index.render(index.rows(FOLDER)), "run: python scripts/index_experiments.py"


def test_every_experiment_file_has_a_reader_of_its_schema():
    for path in sorted(FOLDER.glob("*.json")):
        data = json.loads(path.read_text())
        assert index.reader(data) is not index.read_unknown, path.name


def test_a_figure_a_file_does_not_hold_is_a_dash():
    # pareto.py records no env step count: the row says so instead of guessing one
    (row, _) = [r for r in index.rows(FOLDER) if r.file == "pareto_pendulum.json"]
    assert row.steps is None and row.total_steps is None
    assert "| 2 | - | 8 | - |" in index.render([row])


def test_a_cases_file_gives_a_row_per_arm_against_its_reference():
    """tune_gate.json's form (and c_backend_learning.json's): each arm's mean and interval,
    its learners and env steps, and its ratio to the case's reference arm."""
    arm = lambda mean, learners: {
        "mean": mean,
        "ci": [mean - 1, mean + 1],
        "per_seed": [mean] * 4,
        "learners_per_seed": learners,
        "steps_per_learner": 1000,
    }
    data = {
        "cases": {"walk": {"seeds": [4, 5, 6, 7], "arms": {"A": arm(10.0, 1), "T": arm(12.0, 8)}}}
    }
    assert index.reader(data) is index.read_cases
    rows = {r.arm: r for r in index.read_cases(data, "x.json", REPO)}
    assert rows["A"].against == "-" and rows["T"].against == "1.20x A"
    assert (rows["T"].seeds, rows["T"].seed_start, rows["T"].members) == (4, 4, 8)
    assert rows["T"].total_steps == 8000 and rows["T"].result == "12.00 [11.00, 13.00]"


def test_sim2real_gives_its_probe_cases_each_joystick_run_and_the_sim_to_sim_check():
    data = {
        "cases": {},
        "recurrent_probe_ratio": {"value": 1.0, "command": "probe"},
        "joystick": {"per_seed_tracking_error_fraction": [0.1, 0.2, 0.3], "seeds": [4, 5, 6],
                     "steps_per_learner": 1000, "standing_still_fraction": 0.225,
                     "command": "gate"},
        "sim_to_sim": {"rlx_eval": {"return": 100.0, "tracking_error_fraction": 0.1},
                       "c_mujoco_onnx": {"return": 95.0, "tracking_error_fraction": 0.12},
                       "command": "s2s"},
        "sim_to_sim_return_ratio": {"value": 0.95, "command": "s2s"},
    }  # fmt: skip
    assert index.reader(data) is index.read_sim2real
    gate, check = index.read_sim2real(data, "sim2real.json", REPO)
    assert (gate.case, gate.seeds, gate.seed_start, gate.steps) == ("joystick", 3, 4, 1000)
    assert gate.result.startswith("0.200 [0.") and gate.against == "standing still 0.225"
    assert check.result.startswith("95.0 (0.950x)") and "0.120" in check.result
    assert check.against == "rlx eval 100.0, tracking error 0.100"


@pytest.mark.parametrize(
    ("name", "arm", "members"),
    [
        ("bilevel_humanoid_gate_pbt.json", "F", 4),  # humanoid_poor_weights.yaml sets 4
        ("bilevel_humanoid_lure_gate_pbt.json", "F", 8),  # the default
        ("bilevel_walker2d_hack_gate_pbt.json", "F", 8),
        ("bilevel_walker2d_hack_gate_pbt.json", "A", 1),
    ],
)
def test_a_populations_members_are_read_from_its_command_and_config(name, arm, members):
    data = json.loads((FOLDER / name).read_text())
    stats = index.arm_stats(data, arm, REPO)
    assert stats.members == members


def test_the_ratio_interval_is_bilevel_pys():
    # the humanoid gate's md (written by bilevel.py) gives F 0.81 [0.29, 1.20]
    data = json.loads((FOLDER / "bilevel_humanoid_gate_pbt.json").read_text())
    assert index.format_ratio(index.arm_stats(data, "F", REPO)) == "0.81x [0.29, 1.20] of A"


def readme_results() -> list[dict[str, str]]:
    """The README's results table, a dict per row keyed by its header."""
    section = (REPO / "README.md").read_text().split(RESULTS)[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*\.?\d*", text)]


ROWS = readme_results()


def test_the_readme_has_its_results_table():
    assert len(ROWS) >= 10


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['arm'].split()[0]}:{r['file']}" for r in ROWS])
def test_a_readme_result_agrees_with_its_file(row):
    (link,) = re.findall(r"\]\(([^)]+\.json)\)", row["file"])
    data = json.loads((REPO / link).read_text())
    arm = row["arm"].split()[0]
    stats = index.arm_stats(data, arm, REPO)
    assert row["arm"] == f"{arm} {stats.kind}"
    assert numbers(row["result"]) == numbers(index.format_mean(stats))
    assert numbers(row["against A"]) == numbers(index.format_ratio(stats))
    assert row["seeds"] == index.format_seeds(stats.seeds, stats.seed_start)
    assert stats.members is not None and numbers(row["members"]) == [stats.members]
    assert numbers(row["env steps per learner"]) == [stats.steps]
    assert numbers(row["total env steps"]) == [stats.steps * stats.members]
