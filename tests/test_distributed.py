"""Several processes on jax.distributed (gloo on the CPU, 1 device each): the same update as
one process with as many devices, a dead process ends the others, and an exact resume."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CONFIGS
from rlx import cli
from rlx.run import driver

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT = 120  # s, per process: a hang fails the test instead of the suite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(kind: str, run_dir: Path, processes: int, *extra: str) -> list[subprocess.Popen]:
    env = dict(os.environ)
    if processes == 1:  # the reference: one process, two CPU devices
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    port = str(free_port())
    command = lambda i: [
        sys.executable,
        str(WORKER),
        kind,
        str(run_dir),
        port,
        str(processes),
        str(i),
    ]
    return [
        subprocess.Popen(
            [*command(i), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(processes)
    ]


def finish(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        out, _ = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, out[-3000:]


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_rows(a: list[dict], b: list[dict], rtol: float) -> None:
    assert len(a) == len(b) and len(a) > 1
    for x, y in zip(a, b, strict=True):
        keys = {k for k in x if k not in driver.TIMING_KEYS}
        assert keys == {k for k in y if k not in driver.TIMING_KEYS}
        for k in keys:
            if isinstance(x[k], float):
                assert y[k] == pytest.approx(x[k], rel=rtol, abs=1e-6), k
            else:
                assert y[k] == x[k], k


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    """(one process with 2 devices, 2 processes with 1 device each): the same tiny run."""
    root = tmp_path_factory.mktemp("distributed")
    finish(launch("train", root / "one", 1))
    finish(launch("train", root / "two", 2))
    return root


def test_two_processes_train_as_one_process_with_two_devices(train_runs):
    assert_same_rows(rows(train_runs / "one"), rows(train_runs / "two"), 1e-5)
    two = train_runs / "two"
    assert sorted(p.name for p in two.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
    ]  # process 0 alone wrote the files; both wrote their shards of the checkpoints


@pytest.mark.slow  # two more process pairs (30 s); the train case above is in the fast tier
def test_a_gradient_meta_learner_on_two_processes_equals_one(tmp_path):
    finish(launch("meta", tmp_path / "one", 1))
    finish(launch("meta", tmp_path / "two", 2))
    assert_same_rows(rows(tmp_path / "one"), rows(tmp_path / "two"), 1e-5)


@pytest.mark.slow  # two more process pairs (18-28 s); parity and the kill stay in the fast tier
def test_resuming_both_processes_equals_an_uninterrupted_run(train_runs, tmp_path):
    finish(launch("train", tmp_path / "cut", 2, "2"))  # stopped after 2 of 4 chunks
    assert len(rows(tmp_path / "cut")) == 2
    finish(launch("train", tmp_path / "cut", 2, "--resume"))
    assert_same_rows(rows(train_runs / "two"), rows(tmp_path / "cut"), 0.0)


@pytest.mark.slow  # two more launches (20 s)
def test_a_two_process_checkpoint_resumes_in_one_process(train_runs, tmp_path):
    """Another process count: orbax reshards the checkpoint onto this run's devices (two in
    one process: the updates split their samples over the devices, so the same count)."""
    finish(launch("train", tmp_path / "cut", 2, "2"))
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    single = subprocess.run(
        [sys.executable, str(WORKER), "train", str(tmp_path / "cut"), "0", "1", "0", "--resume"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    assert single.returncode == 0 and "damaged" not in single.stderr, single.stderr[-2000:]
    assert_same_rows(rows(train_runs / "two"), rows(tmp_path / "cut"), 1e-4)


@pytest.mark.slow  # three more launches (30 s)
def test_a_checkpoint_unreadable_on_one_process_only_is_set_aside_by_both(
    train_runs, tmp_path, monkeypatch
):
    """Process 1 fails to read the newest checkpoint's arrays, process 0 reads them: both agree
    it is damaged (no collective mismatch: a checksum on one side, the quarantine barrier on the
    other, would hang), move it aside once and resume from the one before, ending with the
    uninterrupted run's rows."""
    run_dir = tmp_path / "cut"
    finish(launch("train", run_dir, 2, "3"))  # checkpoints after chunks 2 and 3 kept
    monkeypatch.setenv("RLX_READ_FAULT", "restore@1")  # its first read only
    processes = launch("train", run_dir, 2, "--resume")
    outs = []
    for p in processes:
        try:
            outs.append(p.communicate(timeout=TIMEOUT)[0])
        except subprocess.TimeoutExpired:
            for q in processes:
                q.kill()
            raise
    assert [p.returncode for p in processes] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    assert "checkpoint 3 is damaged" in outs[0] and "unreadable on another process" in outs[0]
    assert (run_dir / "checkpoints" / "damaged" / "3").is_dir()
    assert_same_rows(rows(train_runs / "two"), rows(run_dir), 0.0)


def test_killing_one_process_ends_the_other_within_60_s(tmp_path):
    run_dir = tmp_path / "run"
    first, second = launch("train", run_dir, 2, "--steps", "1000000")
    deadline = time.monotonic() + TIMEOUT
    while not (run_dir / "metrics.jsonl").exists() or not rows(run_dir):
        assert time.monotonic() < deadline and first.poll() is None, "the run never started"
        time.sleep(0.2)
    second.kill()  # SIGKILL: no goodbye to the coordinator
    killed = time.monotonic()
    try:
        first.wait(timeout=60)
    finally:
        first.kill()
        first.communicate()
        second.communicate()
    assert first.returncode != 0 and time.monotonic() - killed < 60
    assert (run_dir / "checkpoints").is_dir()  # the last good checkpoint is kept


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2"], "go together"),
        (
            ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
            "--process-id 2: must be in 0..1",
        ),
    ],
)
def test_bad_process_flags_are_one_line(tmp_path, capsys, flags, message):
    args = ["train", str(Path(CONFIGS) / "cartpole.yaml"), *flags, "--run-dir", str(tmp_path / "r")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()
