"""``rlx train --seeds N --sweep KEY=V1,V2``: members vmapped in one program (rlx.run.members)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import CACHE, CONFIGS
from rlx import cli, runs
from rlx.core.schema import ConfigError
from rlx.run import driver, members_dir, sweep

CARTPOLE = str(Path(CONFIGS) / "cartpole.yaml")
SMALL = [
    "train.total_steps=192",
    "train.num_envs=4",
    "train.unroll_length=16",
    "train.num_minibatches=2",
    "train.num_epochs=2",
    "eval.num_envs=4",
    "eval.every_chunks=1",
    "run.chunk_iterations=1",
    "run.tensorboard=false",
    f"run.compilation_cache={CACHE}",
]  # 3 chunks of one iteration each
# vmapped and single programs may round differently; over 3 short iterations the metrics
# agree to this relative tolerance (measured worst: about 1e-5).
RTOL = 1e-4


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in driver.TIMING_KEYS}


def assert_rows_close(got: list[dict], want: list[dict], rtol: float = RTOL) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        a, b = untimed(a), untimed(b)
        assert a.keys() == b.keys()
        for key in b:
            if isinstance(b[key], float):
                np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=1e-6, err_msg=key)
            else:
                assert a[key] == b[key], key


def test_plan_is_the_grid_times_the_seeds():
    sweeps = [sweep.parse_sweep("ppo.learning_rate=1e-4,3e-4"), ("reward.weights.alive", ("1",))]
    plan = sweep.plan(5, 2, sweeps)
    assert [(m.seed, m.label) for m in plan] == [
        (5, "ppo.learning_rate=1e-4, reward.weights.alive=1"),
        (6, "ppo.learning_rate=1e-4, reward.weights.alive=1"),
        (5, "ppo.learning_rate=3e-4, reward.weights.alive=1"),
        (6, "ppo.learning_rate=3e-4, reward.weights.alive=1"),
    ]
    assert plan[3].overrides == [
        "ppo.learning_rate=3e-4",
        "reward.weights.alive=1",
        "train.seed=6",
    ]
    for bad in ("ppo.learning_rate", "ppo.learning_rate=", "=1,2", "ppo.gamma=0.9,"):
        with pytest.raises(ConfigError, match="KEY=V1,V2"):
            sweep.parse_sweep(bad)
    with pytest.raises(ConfigError, match="given twice"):
        sweep.plan(0, 1, [("ppo.gamma", ("0.9",)), ("ppo.gamma", ("0.99",))])


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    """``--seeds 2`` with a sweep of a reward weight, stopped after one chunk then resumed."""
    run_dir = tmp_path_factory.mktemp("members") / "run"
    sweep = ["reward.weights.alive=1,0.5"]
    out = runs.train_members(CARTPOLE, SMALL, 2, sweep, run_dir, show_progress=False, max_chunks=1)
    assert out["status"] == "interrupted"
    alone = run_dir.parent / "alone"  # a copy of the run as it stood, for member 3 alone
    shutil.copytree(run_dir, alone)
    summary = runs.resume_members(run_dir, show_progress=False)
    return run_dir, summary


def test_members_equal_single_seed_runs(seeds_run, tmp_path):
    run_dir, summary = seeds_run
    assert summary["status"] == "completed" and summary["members"] == 4
    plan = json.loads((run_dir / "members.json").read_text())
    assert plan["seeds"] == 2 and plan["sweep"] == [["reward.weights.alive", ["1", "0.5"]]]
    for index, overrides in ((1, ["train.seed=1"]), (2, ["reward.weights.alive=0.5"])):
        from rlx.config import build as build_lib

        config = build_lib.load(CARTPOLE, [*SMALL, *overrides])
        runs.train(config, tmp_path / str(index), show_progress=False)
        member_dir = run_dir / plan["members"][index]["dir"]
        assert_rows_close(rows(member_dir), rows(tmp_path / str(index)))
    # The top rows are the members' means; the table has one line per setting.
    member_rows = [rows(run_dir / m["dir"]) for m in plan["members"]]
    want = np.mean([r[-1]["eval/return"] for r in member_rows])
    assert rows(run_dir)[-1]["eval/return"] == pytest.approx(want)
    table = json.loads((run_dir / "sweep.json").read_text())
    # A sweep of a reward weight ranks its settings by the primary return (the weighted
    # returns of two weightings compare nothing), best first, each with its seeds' interval.
    by_setting = {e["setting"]: e for e in table}
    assert set(by_setting) == {"reward.weights.alive=1", "reward.weights.alive=0.5"}
    half = by_setting["reward.weights.alive=0.5"]
    assert half["return"]["values"] == [r[-1]["eval/return"] for r in member_rows[2:]]
    assert half["primary"]["values"] == [r[-1]["eval/primary_return"] for r in member_rows[2:]]
    assert all(e["ranked_by"] == "primary" for e in table)
    means = [e["primary"]["mean"] for e in table]
    assert means == sorted(means, reverse=True) and [e["rank"] for e in table] == [1, 2]
    low, high = half["primary"]["ci95"]
    assert low <= half["primary"]["mean"] <= high
    text = (run_dir / "sweep.md").read_text()
    assert "Ranked by the final eval primary return" in text and "alive=0.5" in text


def test_a_resumed_members_run_equals_an_uninterrupted_one(seeds_run, tmp_path):
    run_dir, _ = seeds_run
    sweep = ["reward.weights.alive=1,0.5"]
    runs.train_members(CARTPOLE, SMALL, 2, sweep, tmp_path / "whole", show_progress=False)
    assert [untimed(r) for r in rows(run_dir)] == [untimed(r) for r in rows(tmp_path / "whole")]
    for i in range(4):
        got = rows(run_dir / f"members/{i}")
        assert [untimed(r) for r in got] == [
            untimed(r) for r in rows(tmp_path / "whole" / f"members/{i}")
        ]


def test_a_member_resumes_alone_as_a_single_run(seeds_run, capsys):
    run_dir, _ = seeds_run
    alone = run_dir.parent / "alone" / "members/3"  # the run's checkpoint of chunk 1
    assert len(rows(alone)) == 1
    assert cli.main(["train", "--resume", str(alone), "--no-progress"]) == 0
    assert "completed" in capsys.readouterr().out
    assert_rows_close(rows(alone), rows(run_dir / "members/3"))


def test_a_member_resumed_alone_is_detached_from_the_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    runs.train_members(CARTPOLE, SMALL, 2, [], run_dir, show_progress=False, max_chunks=1)
    assert cli.main(["train", "--resume", str(run_dir / "members/1"), "--no-progress"]) == 0
    assert (run_dir / "members/1" / members_dir.DETACHED).exists()
    assert cli.main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "members/1 went on alone" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        ("train.num_envs=4,8", "train.num_envs: a static key"),
        ("network.activation=tanh,relu", "network.activation: a static key"),
        ("train.seed=1,2", "--seeds N"),
        ("reward.parameterization=free,log_scale", "static form"),
    ],
)
def test_a_static_sweep_key_is_one_line_and_writes_nothing(tmp_path, capsys, sweep, named):
    run_dir = tmp_path / "run"
    code = cli.main(["train", CARTPOLE, *SMALL, "--sweep", sweep, "--run-dir", str(run_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and named in err and len(err.splitlines()) == 1
    assert not run_dir.exists()


def test_seeds_and_resume_flags_are_checked(tmp_path, capsys):
    assert cli.main(["train", CARTPOLE, "--seeds", "0"]) == 2
    assert "--seeds 0" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path), "--seeds", "2"]) == 2
    assert "members.json" in capsys.readouterr().err


@pytest.mark.slow  # a fresh process's compiles (17 s); the in-process tests cover the rest
def test_the_cli_splits_the_members_over_cpu_devices_and_keeps_their_numbers(tmp_path):
    """In a fresh process `rlx train --seeds 2` runs each member on its own CPU device (where
    the machine has 2 cores); member 1 still equals the single run of seed 1."""
    import os
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "rlx", "train", CARTPOLE, *SMALL, "--seeds", "2"]
    subprocess.run([*command, "--run-dir", str(run_dir), "--no-progress"], check=True, timeout=300)
    summary = json.loads((run_dir / "summary.json").read_text())
    cores = os.cpu_count() or 1
    assert summary["devices"] == f"{2 if cores >= 2 else 1} x cpu"
    from rlx.config import build as build_lib

    config = build_lib.load(CARTPOLE, [*SMALL, "train.seed=1"])
    runs.train(config, tmp_path / "single", show_progress=False)
    assert_rows_close(rows(run_dir / "members/1"), rows(tmp_path / "single"))
