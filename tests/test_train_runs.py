"""``rlx.lab.train_runs.train_or_resume``: an experiment's run started once, then read."""

from pathlib import Path

import pytest

from conftest import CONFIGS, REPO, tiny_overrides
from rlx.lab.train_runs import train_or_resume


def test_a_run_is_started_then_read_not_rerun(tmp_path):
    run_dir = tmp_path / "run"
    start = [str(Path(CONFIGS) / "cartpole.yaml"), *tiny_overrides(str(tmp_path))]
    summary = train_or_resume(run_dir, start, Path(REPO))
    assert summary["status"] == "completed"
    written = (run_dir / "metrics.jsonl").stat().st_mtime_ns
    assert train_or_resume(run_dir, ["no-such-config.yaml"], Path(REPO)) == summary
    assert (run_dir / "metrics.jsonl").stat().st_mtime_ns == written
    with pytest.raises(SystemExit, match="rlx train exited 2"):
        train_or_resume(tmp_path / "bad", ["no-such-config.yaml"], Path(REPO))
