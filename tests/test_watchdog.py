"""No run hangs silently (rlx.core.watchdog): a stalled compiled call ends the run with one
line naming the phase and leaves it resumable; a second signal ends a stalled process at once.

The stall is simulated by ``RLX_FAULT=<point>:<n>:block``: the main thread waits for ever
inside a compiled call, as a deadlocked XLA execution does (no Python signal handler runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import tiny_overrides


def _start(tmp_path, repo_configs, run_dir, fault, *overrides) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlx",
            "train",
            str(Path(repo_configs) / "cartpole.yaml"),
            *tiny_overrides(str(tmp_path)),
            *overrides,
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # never the repo root: `python -m` would import the source tree
        env={**os.environ, "JAX_PLATFORMS": "cpu", "RLX_FAULT": fault},
    )


def test_a_stalled_chunk_ends_the_run_in_one_line_and_it_resumes(tmp_path, repo_configs):
    run_dir = tmp_path / "run"
    process = _start(
        tmp_path,
        repo_configs,
        run_dir,
        "chunk:3:block",
        "run.stall_timeout_s=2",
        "train.total_steps=128",
    )
    out, err = process.communicate(timeout=240)
    assert process.returncode == 4, err
    lines = [line for line in err.strip().splitlines() if line.startswith("rlx:")]
    assert len(lines) == 1 and "stalled: no progress in chunk" in lines[0], err
    assert f"--resume {run_dir}" in lines[0]
    kept = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["chunk"] for r in kept] == [1, 2]  # the stalled third chunk wrote nothing
    from rlx.cli import main

    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["chunks"] == 4


def test_a_second_signal_ends_a_stalled_process_at_once(tmp_path, repo_configs):
    run_dir = tmp_path / "run"
    process = _start(tmp_path, repo_configs, run_dir, "chunk:1:block", "run.stall_timeout_s=0")
    deadline = time.time() + 180
    while time.time() < deadline and not (run_dir / "config.yaml").exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    time.sleep(3)  # well into the blocked first chunk (or its compile)
    process.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert process.poll() is None  # the first signal only asks for a stop
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "second signal" in err
