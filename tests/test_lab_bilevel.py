"""The bilevel experiments' library (``rlx.lab.bilevel``): each task's arms and configs, an
arm's vmapped run that resumes to the same result, another run's arm cut to this run's seeds,
and a population's weights reported decoded. The command itself: ``tests/test_scripts.py``."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from rlx.core.stats import ratio_ci
from rlx.lab import bilevel


def test_bilevel_arms_of_the_poor_weighting_task():
    task = bilevel.TASKS["humanoid"]
    arms = bilevel.arms(task, "bad")
    assert arms["A"] == ("plain", {"reward": {"weights": task["default"]}})
    assert arms["B"] == ("plain", {"reward": {"weights": task["poor"]}})
    kind, overrides = arms["E"]
    assert kind == "meta" and overrides["reward"]["weights"] == task["poor"]
    assert overrides["meta"]["learn"] == ["combine/alive", "combine/ctrl_cost"]
    assert bilevel.learned_names(task, "bad") == ("forward_velocity", "alive", "ctrl_cost")


def test_bilevel_seeds_are_stable_and_the_ratio_ci_brackets_the_ratio():
    """Seed i is the i-th split key whatever the count (so --seed-start 4 --seeds 8 runs seeds
    4-11, none of those chosen on 0-3), and the ratio's bootstrap CI holds the ratio."""
    import jax
    import numpy as np

    key = jax.random.key(0)
    few, many = jax.random.split(key, 4), jax.random.split(key, 12)
    assert (jax.random.key_data(few) == jax.random.key_data(many[:4])).all()
    values, reference = np.array([9.0, 11.0, 10.0, 12.0]), np.array([10.0, 10.5, 9.5, 10.0])
    low, high = ratio_ci(values, reference)
    assert low < values.mean() / reference.mean() < high and high - low < 0.5
    kind, overrides = bilevel.arms(bilevel.TASKS["cartpole"], "bad")["H"]
    assert kind == "meta" and overrides["meta"]["member_gradient"] == "one_step"


@pytest.mark.slow  # 39 s cold: three bilevel arm processes
def test_a_stopped_bilevel_arm_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    task = bilevel.TASKS["cartpole"]
    kind, overrides = bilevel.arms(task, "bad")["E"]
    tiny = [
        "train.total_steps=512", "train.num_envs=4", "train.unroll_length=16",
        "train.num_minibatches=2", "train.num_epochs=1", "run.chunk_iterations=2",
        "eval.every_chunks=1", "eval.num_envs=2", "env.params.episode_length=20",
        "meta.grad_steps=1", "run.compilation_cache=",
    ]  # fmt: skip
    cfg = bilevel.load(Path(REPO) / task["config"], overrides, tiny)
    names = bilevel.learned_names(task, "bad")
    whole = bilevel.run_arm(kind, cfg, 2, names)
    arm_dir = tmp_path / "E"
    assert bilevel.run_arm(kind, cfg, 2, names, arm_dir, max_chunks=2) is None
    resumed = bilevel.run_arm(kind, cfg, 2, names, arm_dir)
    assert len(whole["env_steps"]) == 4 and resumed["env_steps"] == whole["env_steps"]
    assert resumed["eval_primary"] == whole["eval_primary"]
    assert resumed["weights"] == whole["weights"]


def test_bilevel_lure_task_learns_the_lure_terms_only():
    task = bilevel.TASKS["humanoid_lure"]
    arms = bilevel.arms(task, "bad")
    assert arms["A"][1]["reward"]["weights"] == task["default"]
    assert set(arms["B"][1]["reward"]["weights"]) - set(arms["A"][1]["reward"]["weights"]) == {
        "standing",
        "upright",
    }
    assert arms["E"][1]["meta"]["learn"] == ["combine/standing", "combine/upright"]


def test_bilevel_arm_from_cuts_another_runs_arm_to_this_runs_seeds(tmp_path):
    """--arm-from: arm A of a 4-seed run from seed 2 serves a 2-seed run from seed 3 (its
    seeds 3-4), and refuses seeds it did not run, another budget and other arm settings."""
    import numpy as np

    task = bilevel.TASKS["cartpole"]
    _, overrides = bilevel.arms(task, "bad")["A"]
    cfg = bilevel.load(Path(REPO) / task["config"], overrides, [])
    steps = [cfg.train.total_steps * i // 4 for i in range(1, 5)]  # as many evals as seeds
    arm = {
        "env_steps": steps, "final": [1.0, 2.0, 3.0, 4.0],
        "eval_primary": [[0.0] * 4] * 3 + [[1, 2, 3, 4]],
        "eval_terms": {"reward": [[0.0] * 4] * 3 + [[5, 6, 7, 8]]}, "eval_length": [], "weight": [],
        "gamma": [], "weights": {}, "wall_s": 9.0, "kind": "plain", "overrides": overrides,
        "restarts": 0,
    }  # fmt: skip
    source = tmp_path / "run.json"
    source.write_text(json.dumps({"meta": {"seeds": 4, "seed_start": 2}, "arms": {"A": arm}}))
    args = bilevel.Experiment("cartpole", "bad", seeds=2, seed_start=3)
    got = bilevel.arm_from("A", source, args, Path(REPO))
    assert got["final"] == [2.0, 3.0] and got["eval_primary"][-1] == [2, 3]
    assert got["eval_terms"]["reward"][-1] == [6, 7] and got["mean"] == 2.5
    assert "seeds 3-4 of its 4" in got["from"] and np.isfinite(got["ci95"]).all()
    assert got["env_steps"] == steps  # one per eval, not per seed: never cut
    with pytest.raises(SystemExit, match="has no arm Z"):
        bilevel.arm_from("Z", source, args, Path(REPO))
    with pytest.raises(SystemExit, match="it ran seeds 2-5, not 5-6"):
        bilevel.arm_from("A", source, replace(args, seed_start=5), Path(REPO))
    longer = replace(args, overrides=("train.total_steps=9000000",))
    with pytest.raises(SystemExit, match="env steps per learner, this run 9000000"):
        bilevel.arm_from("A", source, longer, Path(REPO))
    source.write_text(json.dumps({"meta": {"seeds": 4, "seed_start": 2}, "arms": {"B": arm}}))
    with pytest.raises(SystemExit, match="not the fixed arm B"):  # B's weights are not A's
        bilevel.arm_from("B", source, args, Path(REPO))


def test_every_bilevel_task_loads_with_each_arms_settings():
    """Each task's config, with each arm's overrides, is a valid config (a typo in a task's
    weights or its config file fails here, before an experiment spends an hour on it)."""
    for name, task in bilevel.TASKS.items():
        for arm, (_kind, overrides) in bilevel.arms(task, "bad").items():
            cfg = bilevel.load(Path(REPO) / task["config"], overrides, [])
            weights = dict(cfg.reward.weights)
            assert weights == overrides["reward"]["weights"], (name, arm)
    walker = bilevel.arms(bilevel.TASKS["walker2d"], "bad")
    assert walker["B"][1]["reward"]["weights"]["reward_healthy"] == 100.0
    assert walker["E"][1]["meta"]["learn"] == ["combine/reward_healthy"]


def test_bilevel_reports_a_populations_weights_decoded_not_its_log_scale_phi():
    """A population logs only phi; under ``log_scale`` phi is log|w|. The report holds the
    weights themselves (100, not 4.6), and the effective weights where a method logs them."""
    from rlx.config import build as build_lib

    task = bilevel.TASKS["cartpole"]
    overrides = bilevel.arms(task, "bad")["F"][1]
    cfg = bilevel.load(
        Path(REPO) / task["config"], overrides, ["reward.parameterization=log_scale"]
    )
    reward_fn = build_lib.build(cfg, meta=True).reward_fn
    names = list(cfg.reward.weights)
    signs = {n: np.sign(w) or 1.0 for n, w in cfg.reward.weights.items()}
    raw = {n: np.log([[0.5, 2.0], [1.0, 100.0]]) for n in names}  # [seeds, iterations]
    got = bilevel.decoded_weights({f"phi/combine/{n}": v for n, v in raw.items()}, reward_fn)
    for n in names:
        np.testing.assert_allclose(got[n], signs[n] * np.array([2.0, 100.0]), rtol=1e-5)
    logged = {"weights/x": np.ones((2, 3)) * 7.0, "phi/combine/x": np.zeros((2, 3))}
    assert got.keys() == set(names)
    np.testing.assert_array_equal(bilevel.decoded_weights(logged, reward_fn)["x"], [7.0, 7.0])
