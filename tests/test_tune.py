"""``rlx tune``: the plan within a budget (exact env-step accounting), bad input in one line
with nothing written, an end-to-end tiny run that resumes and writes a plain tuned.yaml, and
the NaN guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import config as config_lib
from rlx import tune
from rlx.cli import main
from rlx.core.schema import ConfigError

ANTI_PD = str(Path(CONFIGS) / "meta" / "cartpole_anti_pd.yaml")


@pytest.mark.parametrize("budget", [1, 1.5, 2, 3, 4.9, 8])
def test_the_plan_never_spends_more_than_the_budget(budget):
    config = config_lib.load(ANTI_PD, ["train.total_steps=300000"])
    plan = tune.plan(config, budget, ("pd_anti",))
    assert plan.members == (1 if budget < 2 else int(budget))
    assert plan.method == ("one_step" if budget < 2 else "population")
    assert plan.env_steps_per_learner <= plan.run_env_steps
    assert plan.total_env_steps == plan.members * plan.env_steps_per_learner
    assert plan.total_env_steps <= budget * plan.run_env_steps
    # what the meta run will really take per learner (its config, rounded as it rounds)
    meta = config_lib.load(ANTI_PD, ["train.total_steps=300000", *plan.overrides])
    batch = meta.train.num_envs * meta.train.unroll_length
    assert meta.meta_iterations * meta.meta.ppo_iterations * batch == plan.env_steps_per_learner
    if plan.members > 1:  # the start stays a member (do no harm)
        assert meta.meta.population_size == plan.members and meta.meta.keep_start


def test_by_default_every_weight_but_the_primary_terms_is_tuned():
    config = config_lib.load(str(Path(CONFIGS) / "meta" / "halfcheetah_ctrl.yaml"))
    assert tune.plan(config, 1).learn == ("reward_ctrl",)  # reward_run is the primary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learn", "nope"], "--learn nope: no such weight in reward.weights (there are: alive"),
        (["--learn", "pd_anti", "--budget", "0.5"], "--budget 0.5: must be at least 1"),
        (["--learn", "pd_anti", "reward.weights.pd_anti=0"], "--learn pd_anti: its weight is 0"),
        (
            [],
            "cartpole names no primary term to hold fixed: say which weights to tune with --learn",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    run_dir = tmp_path / "run"
    code = main(["tune", ANTI_PD, *args, "--run-dir", str(run_dir), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not run_dir.exists()


@pytest.mark.slow  # a population, its compare run and a plain run compiled: over 30 s cold
def test_a_tiny_tune_resumes_and_writes_a_plain_tuned_config(tmp_path):
    overrides = [*tiny_overrides(str(tmp_path)), "train.total_steps=320"]
    run_dir = tmp_path / "tune"
    out = tune.tune(ANTI_PD, overrides, run_dir, 2, ("pd_anti",), True, show_progress=False,
                    max_chunks=1)  # fmt: skip
    assert out["status"] == "interrupted" and not (run_dir / "tuned.yaml").exists()
    out = tune.resume(run_dir, show_progress=False)
    assert out["status"] == "completed"
    saved = json.loads((run_dir / "tune.json").read_text())
    plan = saved["plan"]
    assert plan["members"] == 2 and plan["method"] == "population"
    assert plan["total_env_steps"] == 2 * plan["env_steps_per_learner"] <= 2 * plan["run_env_steps"]
    assert saved["report"]["total_env_steps"] == plan["total_env_steps"]
    tuned = config_lib.load(run_dir / "tuned.yaml")  # strict: a plain config
    assert tuned.reward.weights["pd_anti"] == pytest.approx(saved["weights"]["pd_anti"])
    assert tuned.reward.weights["alive"] == 1.0 and tuned.meta == type(tuned.meta)()
    assert tuned.reward.parameterization == "free"
    report = (run_dir / "report.md").read_text()
    assert "pd_anti" in report and "episode length" in report and "compare/" in report
    assert (run_dir / "report.png").stat().st_size > 10_000
    compare = json.loads((run_dir / "compare" / "summary.json").read_text())
    assert compare["env_steps"] == plan["env_steps_per_learner"]
    code = main(["train", str(run_dir / "tuned.yaml"), "--run-dir", str(tmp_path / "plain"),
                 "--no-progress"])  # fmt: skip
    assert code == 0


def test_a_tune_that_goes_non_finite_stops_with_the_guard(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(
        ["tune", ANTI_PD, "--learn", "pd_anti", "--budget", "1", "reward.weights.alive=3e38",
         *tiny_overrides(str(tmp_path)), "--run-dir", str(run_dir), "--no-progress"]
    )  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged at chunk 1" in err[0]
    assert not (run_dir / "tuned.yaml").exists()


def test_resume_of_a_directory_that_is_no_tune_run_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("env: {name: cartpole}\n")
    with pytest.raises(ConfigError, match="not an rlx tune run"):
        tune.resume(tmp_path, show_progress=False)
