"""Command-line checks that lose nothing: resume of the wrong kind of run, --run-dir next to
--resume, overrides after options, and ``rlx meta`` without matplotlib."""

from __future__ import annotations

import json
import sys

from conftest import tiny_overrides
from rlx.cli import main


def test_resume_checks_the_run_kind_and_refuses_run_dir(tmp_path, repo_configs, capsys):
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(str(tmp_path))
    # Overrides after an option are accepted (--no-progress before two of them).
    args = ["train", f"{repo_configs}/cartpole.yaml", *overrides[:-2], "--no-progress"]
    assert main([*args, *overrides[-2:], "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["meta", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kind 'train' found, 'meta' expected" in err[0], err
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert main(["train", "--resume", str(run_dir), "--run-dir", str(tmp_path / "x")]) == 2
    assert "give no --run-dir" in capsys.readouterr().err
    assert (run_dir / "metrics.jsonl").read_text().splitlines() == rows  # nothing lost
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_phi_plot_is_skipped_in_one_line_without_matplotlib(tmp_path, monkeypatch, capsys):
    from rlx.run import meta_run

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"env_steps": 1, "phi/a": 1.0}) + "\n")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as on a base install
    assert meta_run.plot(tmp_path) is None
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "phi.png").exists()


def test_the_closing_line_fits_80_columns_with_every_figure_whole(monkeypatch, capsys):
    from rlx import cli

    monkeypatch.setenv("COLUMNS", "80")
    summary = {"status": "completed", "env_steps": 409_600, "wall_s": 1234.5, "compile_s": 12.3,
               "final_eval_return": 498.7, "final_eval_primary_return": 456.25}  # fmt: skip
    cli._report(summary, "runs/cartpole-20261207-101500-with-a-long-name")
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    for whole in ("409,600", "1234.5s", "12.3s", "498.7", "456.2", "cartpole-20261207-101500"):
        assert whole in out, (whole, out)
