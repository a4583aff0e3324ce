"""The equal-compute protocol (rlx.lab.tune_gate): the sweep's draws stay in the tuner's box,
the pick reads the training return, the figures state their env steps; and, slow, every arm
of a tiny case runs, stops and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides
from rlx.lab import tune_gate

CASE = tune_gate.Case(
    config=str(Path(CONFIGS) / "meta" / "cartpole_anti_pd.yaml"),
    expert={"alive": 1.0, "pd_anti": 0.01},
    start={"alive": 1.0, "pd_anti": 1.0},
    learn=("pd_anti",),
    budget=2,
)


def test_the_sweep_draws_in_the_tuners_box_per_seed():
    draws = tune_gate.sweep_draws(CASE, 4)
    assert len(draws) == CASE.budget and draws == tune_gate.sweep_draws(CASE, 4)
    assert draws != tune_gate.sweep_draws(CASE, 5)
    for draw in draws:
        assert draw["alive"] == 1.0  # not learned: as the start
        factor = abs(np.log(draw["pd_anti"] / CASE.start["pd_anti"]))
        assert factor <= tune_gate.SEARCH_RADIUS


def test_the_pick_reads_the_last_tenth_of_the_training_return():
    rows = [{"env_steps": 100 * i, "train/primary_return": float(i)} for i in range(1, 21)]
    assert tune_gate.picked_by_training(rows) == pytest.approx(np.mean([18, 19, 20]))
    out = tune_gate.summarize([1.0, 3.0], learners=8, steps_per_learner=1000)
    assert out["total_env_steps"] == 8000 and out["mean"] == 2.0
    assert out["ci"][0] <= 2.0 <= out["ci"][1]


@pytest.mark.slow  # five small programs compiled: about a minute on 2 cores
def test_every_arm_of_a_tiny_case_runs_and_resumes(tmp_path):
    overrides = [*tiny_overrides(str(tmp_path)), "train.total_steps=320"]
    arms = ("A", "B", "S", "T", "T1")
    root = tmp_path / "gate"
    part = tune_gate.run_case(CASE, [4, 5], root, arms, overrides, show_progress=False,
                              max_chunks=1)  # fmt: skip
    assert part == {}  # A stopped after a chunk, and the case with it (a signal stops the gate)
    assert (root / "A" / "members.json").exists() and not (root / "B").exists()
    handed = []
    out = tune_gate.run_case(CASE, [4, 5], root, arms, overrides, show_progress=False,
                             on_arm=lambda arm, result: handed.append((arm, result)))  # fmt: skip
    assert [arm for arm, _ in handed] == list(arms) and dict(handed) == out
    for arm in arms:  # each seed's final episode length and term sums (a hack would show)
        assert len(out[arm]["per_seed_length"]) == 2
        assert set(out[arm]["per_seed_terms"][0]) >= {"alive", "pd_anti"}
    run = out["A"]["steps_per_learner"]
    assert out["S"]["total_env_steps"] == CASE.budget * run
    assert out["T"]["total_env_steps"] <= CASE.budget * run
    assert out["T1"]["total_env_steps"] <= run
    assert len(out["S"]["picked_member"]) == 2 and len(out["T"]["per_seed"]) == 2
    plan = json.loads((root / "S" / "members.json").read_text())
    assert len(plan["members"]) == 2 * CASE.budget


def test_arms_measured_before_are_kept_and_do_no_harms_b_is_its_a(tmp_path):
    """``known`` arms are not run again; where the start is the expert's weighting, B is A's
    runs (the same program), taken without running anything."""
    overrides = tiny_overrides(str(tmp_path))
    known = {"A": {"mean": 3.0, "per_seed": [3.0], "command": "the command that ran A"}}
    handed = []
    expert = tune_gate.Case(**{**CASE.__dict__, "start": CASE.expert})
    out = tune_gate.run_case(expert, [4], tmp_path / "gate", ("A", "B"), overrides,
                             on_arm=lambda arm, r: handed.append(arm), known=known)  # fmt: skip
    assert out["A"] == known["A"] and out["B"]["same_as"] == "A" and out["B"]["mean"] == 3.0
    assert "command" not in out["B"]  # B's record gets the command of the case it is in
    assert handed == ["B"] and not (tmp_path / "gate").exists()


def test_a_tune_arm_measured_under_another_plan_runs_again_in_a_fresh_dir(tmp_path):
    """A known T arm is kept only under the plan it was measured with; an arm directory left
    by another config is set aside (``<arm>.old1``), one of the same config left to resume."""
    from rlx import config as config_lib

    base = config_lib.load(CASE.config, ["train.total_steps=320"])
    plans = tune_gate.tune_plans(CASE, base)
    current = {"plan": list(plans["T"].overrides), "mean": 1.0}
    known = {"A": {"mean": 2.0}, "T": current, "T1": {"mean": 3.0}}  # T1: no plan recorded
    assert tune_gate.still_current(known, plans) == {"A": {"mean": 2.0}, "T": current}
    arm = tmp_path / "T"
    arm.mkdir()
    config = config_lib.load(CASE.config, plans["T"].overrides)
    (arm / "config.yaml").write_text(config_lib.dump(config))
    tune_gate._set_aside_if_changed(arm, config)
    assert arm.exists()
    other = config_lib.load(CASE.config, [*plans["T"].overrides, "meta.keep_start=false"])
    tune_gate._set_aside_if_changed(arm, other)
    assert not arm.exists() and (tmp_path / "T.old1" / "config.yaml").exists()
