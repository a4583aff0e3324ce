"""Learning thresholds on the shipped configs (slow tier: `pytest -m slow`)."""

from pathlib import Path

import pytest

from rlx import config as config_lib
from rlx import driver

pytestmark = pytest.mark.slow


def test_cartpole_config_reaches_450(tmp_path, repo_configs):
    config = config_lib.load(Path(repo_configs) / "cartpole.yaml", [f"run.root={tmp_path}"])
    summary = driver.train(config, tmp_path / "run", show_progress=False)
    assert summary["best_eval_return"] >= 450
    assert summary["final_eval_return"] >= 450


def test_pendulum_config_learns_past_minus_300(tmp_path, repo_configs):
    # A random policy scores about -1200 over the 200-step episode; upright and still is 0.
    config = config_lib.load(Path(repo_configs) / "pendulum.yaml", [f"run.root={tmp_path}"])
    summary = driver.train(config, tmp_path / "run", show_progress=False)
    assert summary["final_eval_return"] >= -300
