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
    """The run in a child process; its stderr goes to ``tmp_path/err.txt`` (read while it
    runs: ``_wait_for``)."""
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
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "err.txt").open("w"),
        text=True,
        cwd=tmp_path,  # never the repo root: `python -m` would import the source tree
        env={**os.environ, "JAX_PLATFORMS": "cpu", "RLX_FAULT": fault},
    )


def _wait_for(process: subprocess.Popen, path: Path, text: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and text not in path.read_text():
        assert process.poll() is None, path.read_text()
        time.sleep(0.2)
    assert text in path.read_text(), path.read_text()


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
    process.wait(timeout=240)
    err = (tmp_path / "err.txt").read_text()
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


def test_a_compile_that_idles_is_a_stall(tmp_path, repo_configs):
    """A compile may run for minutes, but one that uses no CPU (every thread waiting, as in
    the CPU hang of docs/troubleshooting.md) ends the run in one line."""
    run_dir = tmp_path / "run"
    process = _start(tmp_path, repo_configs, run_dir, "compile:1:block", "run.stall_timeout_s=3")
    process.wait(timeout=240)
    err = (tmp_path / "err.txt").read_text()
    assert process.returncode == 4, err
    lines = [line for line in err.strip().splitlines() if line.startswith("rlx:")]
    assert len(lines) == 1 and "stalled: no CPU time used in compile" in lines[0], err


def test_a_second_signal_ends_a_stalled_process_at_once(tmp_path, repo_configs):
    run_dir = tmp_path / "run"
    process = _start(tmp_path, repo_configs, run_dir, "chunk:1:block", "run.stall_timeout_s=0")
    _wait_for(process, tmp_path / "err.txt", "RLX_FAULT: blocking at chunk")
    time.sleep(1)  # inside the blocked compiled call
    process.send_signal(signal.SIGTERM)
    time.sleep(2)
    assert process.poll() is None  # the first signal only asks for a stop: it waits
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert time.monotonic() - sent < 10
    err = (tmp_path / "err.txt").read_text()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "second signal" in err
