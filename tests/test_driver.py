"""Runs, shipped configs, exact resume and graceful stop."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HEAVY_CHUNK_CONFIGS, TRACE_ONLY_CONFIGS, tiny_overrides
from rlx import runs
from rlx.config import build as build_lib
from rlx.run import driver

SHIPPED = sorted(p.name for p in (Path(__file__).parent.parent / "configs").glob("*.yaml"))


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timings(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in driver.TIMING_KEYS}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_loads_strictly_and_runs_a_tiny_chunk(tmp_path, repo_configs, name):
    config = build_lib.load(Path(repo_configs) / name, tiny_overrides(str(tmp_path)))
    if name in TRACE_ONLY_CONFIGS:
        _trace_only(config)
        return
    _tiny_chunk(config, tmp_path)


@pytest.mark.slow  # 25-65 s each cold; the fast tier traces them
@pytest.mark.parametrize("name", sorted(HEAVY_CHUNK_CONFIGS))
def test_heavy_shipped_config_runs_a_tiny_chunk(tmp_path, repo_configs, name):
    _tiny_chunk(build_lib.load(Path(repo_configs) / name, tiny_overrides(str(tmp_path))), tmp_path)


def _tiny_chunk(config, tmp_path):
    summary = runs.train(config, tmp_path / "run", show_progress=False)
    run_rows = rows(tmp_path / "run")
    assert summary["status"] == "completed" and len(run_rows) == config.iterations // 2
    first = run_rows[0]
    for key in ("env_steps", "wall_s", "train/steps_per_s", "eval/return", "eval/primary_return"):
        assert key in first
    assert any(k.startswith("terms/") for k in first)
    assert any(k.startswith("reward/") for k in first)  # the reward's parts, per episode
    assert (tmp_path / "run" / "config.yaml").exists()
    assert (tmp_path / "run" / "checkpoints").exists()


def _trace_only(config):
    """Builds the run and traces its init, train chunk and eval without compiling them."""
    import functools

    import jax

    built = build_lib.build(config)

    agent, hparams = built.agent, built.hparams
    state = jax.eval_shape(agent.init, jax.random.key(0), hparams.reward_params)
    chunk = functools.partial(agent.train_chunk, num_iterations=config.run.chunk_iterations)
    new_state, metrics = jax.eval_shape(chunk, state, hparams)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert any(k.startswith("episode_total/reward/") for k in metrics)
    out = jax.eval_shape(agent.evaluate, state, hparams, jax.random.key(1))
    assert "eval/primary_return" in out


def test_resume_gives_identical_metrics(tmp_path, repo_configs):
    overrides = [*tiny_overrides(str(tmp_path)), "train.total_steps=96"]  # 3 chunks
    config = build_lib.load(Path(repo_configs) / "cartpole.yaml", overrides)
    runs.train(config, tmp_path / "whole", show_progress=False)
    partial = runs.train(config, tmp_path / "split", show_progress=False, max_chunks=1)
    assert partial["status"] == "interrupted"
    # A row written after the last checkpoint (as if killed mid-chunk) must be dropped.
    with (tmp_path / "split" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"chunk": 2, "env_steps": -1}) + "\n")
    resumed = runs.train(config, tmp_path / "split", resume=True, show_progress=False)
    assert resumed["status"] == "completed"
    whole, split = rows(tmp_path / "whole"), rows(tmp_path / "split")
    assert [r["chunk"] for r in split] == [1, 2, 3]
    assert [without_timings(r) for r in whole] == [without_timings(r) for r in split]


def test_sigterm_stops_at_a_chunk_boundary_with_a_resumable_checkpoint(tmp_path, repo_configs):
    run_dir = tmp_path / "run"
    overrides = [*tiny_overrides(str(tmp_path)), "train.total_steps=64000"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlx",
            "train",
            str(Path(repo_configs) / "cartpole.yaml"),
            *overrides,
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # never the repo root: `python -m` would import the source tree
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    deadline = time.time() + 120
    metrics = run_dir / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "resume with: rlx train --resume" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    done = rows(run_dir)
    assert done and done[-1]["chunk"] < 1000
    config = build_lib.load(run_dir / "config.yaml")
    resumed = runs.train(config, run_dir, resume=True, show_progress=False, max_chunks=1)
    assert rows(run_dir)[-1]["chunk"] == done[-1]["chunk"] + 1
    assert resumed["chunks"] == done[-1]["chunk"] + 1


def test_plain_progress_prints_primary_and_reward_parts(capsys):
    from rlx.run.progress import Progress

    row = {
        "env_steps": 100,
        "wall_s": 1.0,
        "train/return": 2.0,
        "train/primary_return": 5.0,
        "reward/factor/upright": 0.5,
        "reward/progress": 3.0,
        "eval/return": 1.5,
    }
    with Progress(total_steps=200) as progress:
        progress.interactive = False
        progress._bar = None
        progress.update(row)
    out = capsys.readouterr().out
    assert "primary      5.0" in out
    assert "reward parts per episode: factor/upright 0.5  progress 3" in out


def test_rlx_train_turns_off_cpu_async_dispatch_before_the_backend_starts(tmp_path, repo_configs):
    # The CPU client reads the flag when it is made: set later, it would change nothing.
    probe = f"""
import jax
from jax._src import xla_bridge
from rlx import cli
from rlx.core import runtime
seen = []
configure = runtime.configure
runtime.configure = lambda: (seen.append(xla_bridge.backends_are_initialized()), configure())
code = cli.main(["train", {str(Path(repo_configs) / "cartpole.yaml")!r}, "--no-progress",
                 "--run-dir", {str(tmp_path / "run")!r}, *{tiny_overrides(str(tmp_path))!r}])
print("PROBE", code, seen[0], jax.config.read("jax_cpu_enable_async_dispatch"))
"""
    env = {k: v for k, v in os.environ.items() if k != "RLX_CPU_ASYNC_DISPATCH"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env
    )
    assert "PROBE 0 False False" in out.stdout, out.stdout[-1500:] + out.stderr[-1500:]
