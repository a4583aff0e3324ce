"""A run loses nothing to faults: NaN from an env, a kill during compile, a damaged newest
checkpoint, a truncated metrics line, an edited config, and bad input that never starts."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CACHE, tiny_overrides
from rlx import envs, runs
from rlx.cli import main
from rlx.config import build as build_lib
from rlx.envs.probes import _Probe
from rlx.run import driver
from rlx.run.checkpoint import Checkpointer

SMALL = [
    "train.num_envs=4",
    "train.unroll_length=8",
    "train.num_minibatches=2",
    "train.num_epochs=1",
    "run.chunk_iterations=2",
    "eval.num_envs=2",
    "run.tensorboard=false",
    f"run.compilation_cache={CACHE}",
]


class NaNAfter(_Probe):
    """Never ends; its reward turns NaN from the env's 40th step on (the 3rd chunk of SMALL:
    8 steps per iteration, 2 iterations per chunk)."""

    def _outcome(self, obs, count, action):
        reward = jnp.where(count >= 40, jnp.nan, 1.0)
        return obs, reward, jnp.zeros((), bool)


if "nan_after_test" not in envs.REGISTRY:
    envs.register("nan_after_test", NaNAfter)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def same(a: list[dict], b: list[dict]) -> bool:
    drop = lambda r: {k: v for k, v in r.items() if k not in driver.TIMING_KEYS}
    return [drop(r) for r in a] == [drop(r) for r in b]


def test_an_env_that_emits_nan_later_diverges_and_keeps_its_finite_checkpoint(tmp_path, capsys):
    config = tmp_path / "nan.yaml"
    config.write_text(
        "env: {name: nan_after_test, params: {episode_length: 100000}}\n"
        "reward: {weights: {reward: 1.0}}\n"
        "train: {total_steps: 256}\neval: {every_chunks: 100}\n"
    )
    run_dir = tmp_path / "run"
    code = main(["train", str(config), *SMALL, "--run-dir", str(run_dir), "--no-progress"])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged at chunk 3" in err[0] and "terms/reward first" in err[0], err
    assert "(chunk 2) is kept" in err[0] and f"--resume {run_dir}" in err[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged"]["iteration"] == 6
    program = driver.ppo_program(build_lib.build(build_lib.load(run_dir / "config.yaml")))
    checkpointer = Checkpointer(run_dir / "checkpoints")
    state, record = checkpointer.restore(jax.eval_shape(program.init, jax.random.key(0)))
    checkpointer.close()
    assert record["chunk"] == 2 and checkpointer.latest_step() == 2
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, repo_configs, capsys):
    overrides = [*tiny_overrides(str(tmp_path)), "train.total_steps=96", "run.tensorboard=true"]
    config = build_lib.load(Path(repo_configs) / "cartpole.yaml", overrides)
    runs.train(config, tmp_path / "whole", show_progress=False)
    split = tmp_path / "split"
    runs.train(config, split, show_progress=False, max_chunks=2)
    # The newest checkpoint's data files cut short, and half a row left in metrics.jsonl.
    for path in (split / "checkpoints" / "2").rglob("*"):
        if path.is_file() and path.stat().st_size > 64 and "ocdbt" in str(path):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with (split / "metrics.jsonl").open("a") as f:
        f.write('{"chunk": 3, "env_st')
    capsys.readouterr()
    resumed = runs.train(config, split, resume=True, show_progress=False)
    err = capsys.readouterr().err
    assert "checkpoint 2 is damaged" in err and "truncated last line" in err
    assert resumed["status"] == "completed"
    assert (split / "checkpoints" / "damaged" / "2").is_dir()  # kept, out of the way
    assert [r["chunk"] for r in rows(split)] == [1, 2, 3]
    assert same(rows(tmp_path / "whole"), rows(split))
    assert len(resumed["resume_compile_s"]) == 1 and resumed["compile_s"] > 0
    assert sorted(tb_steps(split / "tb", "loss/value")) == [32, 64, 96]  # no step twice


def tb_steps(tb: Path, tag: str) -> list[int]:
    """The steps of ``tag`` in the TensorBoard event files under ``tb`` (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    steps = []
    for path in tb.glob("events.*"):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return steps


def test_resume_refuses_an_edited_config_unless_allowed(tmp_path, repo_configs, capsys):
    run_dir = tmp_path / "run"
    args = ["train", f"{repo_configs}/cartpole.yaml", *tiny_overrides(str(tmp_path))]
    assert main([*args, "train.total_steps=96", "--run-dir", str(run_dir), "--no-progress"]) == 0
    config_file = run_dir / "config.yaml"
    text = config_file.read_text()
    config_file.write_text(text.replace("gamma: 0.99", "gamma: 0.95", 1))
    summary_before = (run_dir / "summary.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs from the config checkpoint 3" in err[0], err
    assert "ppo.gamma" in err[0] and "--allow-config-change" in err[0]
    assert (run_dir / "summary.json").read_text() == summary_before  # nothing touched
    code = main(["train", "--resume", str(run_dir), "--no-progress", "--allow-config-change"])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config_changes"] == [{"chunk": 3, "changed": {"ppo.gamma": [0.99, 0.95]}}]


def rlx(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlx", *args],
        capture_output=True,
        text=True,
        cwd=cwd,  # never the repo root: `python -m` would import the source tree
        env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
        timeout=300,
    )


def test_a_kill_during_compile_leaves_a_run_that_restarts_or_resumes(tmp_path, repo_configs):
    run_dir = tmp_path / "run"
    args = ["train", f"{repo_configs}/cartpole.yaml", *tiny_overrides(str(tmp_path))]
    args += ["--run-dir", str(run_dir), "--no-progress"]
    killed = rlx(args, tmp_path, RLX_FAULT="compile")
    assert killed.returncode == -9 and (run_dir / "config.yaml").exists()
    again = rlx(args, tmp_path)  # the same command and --run-dir: not refused
    assert again.returncode == 0, again.stderr
    whole = rows(run_dir)
    shutil.rmtree(run_dir)
    assert rlx(args, tmp_path, RLX_FAULT="compile").returncode == -9
    resumed = rlx(["train", "--resume", str(run_dir), "--no-progress"], tmp_path)
    assert resumed.returncode == 0 and "starting it from scratch" in resumed.stdout
    assert same(whole, rows(run_dir))


BAD_INPUTS = {
    "seed overflow": ["train.seed=1e30"],
    "negative seed": ["train.seed=-1"],
    "too many iterations": ["train.total_steps=1e15"],
    "negative layer": ["network.policy_hidden=[-5]"],
    "zero layer": ["network.policy_hidden=[0]"],
    "zero episode length": ["env.params.episode_length=0"],
    "int32 overflow": ["train.num_envs=3e9"],
    "malformed override": ["train.seed=[1"],
    "yaml tag override": ["train.seed=!!python/object:os.system"],
    "population from override": ["meta.method=population", "meta.population_size=3"],
    "schedule on population": ["meta.method=population", "meta.outer_schedule=linear"],
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_overrides_are_one_line_errors_and_write_nothing(tmp_path, repo_configs, capsys, name):
    run_dir = tmp_path / "run"
    args = ["meta", f"{repo_configs}/meta/cartpole_anti_pd.yaml", *BAD_INPUTS[name]]
    assert main([*args, "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlx: error: config: override"), err
    assert BAD_INPUTS[name][-1] in err[0]  # the override that set the bad value
    assert not run_dir.exists()


def bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "c.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)))
    else:  # a duplicated section: the second ppo would replace the first
        path.write_text("env: {name: cartpole}\nppo: {gamma: 0.9}\ntrain: {seed: 1}\nppo: {}\n")
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("directory", "is a directory"),
        ("binary", "not a text file"),
        ("duplicate", "duplicate key 'ppo' on line 4 (first on line 2)"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, kind, message):
    run_dir = tmp_path / "run"
    assert main(["train", str(bad_file(tmp_path, kind)), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not run_dir.exists()


def test_unusable_run_dirs_are_refused_before_anything_is_built(tmp_path, repo_configs, capsys):
    (tmp_path / "file").write_text("x")
    config = f"{repo_configs}/cartpole.yaml"
    cases = {
        str(tmp_path / "file" / "run"): "is not a directory",
        str(tmp_path / ("x" * 300)): "not a valid path",
        str(tmp_path / "file"): "exists and is not a directory",
    }
    for run_dir, message in cases.items():
        assert main(["train", config, "--run-dir", run_dir, "--no-progress"]) == 2
        err = capsys.readouterr()
        assert len(err.err.strip().splitlines()) == 1 and message in err.err, (run_dir, err)
        assert "run directory:" not in err.out  # never printed as if it worked
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    assert "not a run directory (no config.yaml)" in capsys.readouterr().err


def test_the_stop_flag_asks_once_then_aborts_and_fault_points_count(monkeypatch):
    import signal

    from rlx.core import interrupts

    exits = []
    monkeypatch.setattr(interrupts.os, "_exit", exits.append)
    flag = interrupts.StopFlag()
    flag(signal.SIGTERM, None)  # the first signal only asks for a stop
    assert flag.signum == signal.SIGTERM and not exits
    flag(signal.SIGTERM, None)  # a second outside the chunk loop (imports, build) ends it
    assert exits == [128 + signal.SIGTERM]
    flag.abortable = True
    with pytest.raises(interrupts.Interrupted):
        flag(signal.SIGINT, None)  # in the chunk loop a second signal stops at once
    flag(signal.SIGINT, None)  # later ones are ignored while the run winds down
    assert exits == [128 + signal.SIGTERM] and flag.handled == 4
    killed = []
    monkeypatch.setattr(interrupts.os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.setattr(interrupts, "_reached", interrupts.collections.Counter())
    monkeypatch.setenv("RLX_FAULT", "eval:2")
    for point in ("chunk", "eval", "chunk", "eval", "eval"):
        interrupts.fault(point)
    assert killed == [signal.SIGKILL]  # the second eval only
