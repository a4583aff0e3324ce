"""W&B as an optional logger (``run.wandb``): an offline run holds the rows' scalars."""

import glob
import json
import struct
from pathlib import Path

import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import runs
from rlx.config import build as build_lib


def wandb_records(path: Path):
    """The protobuf records of a ``.wandb`` file (wandb's LevelDB-style log: a 7-byte header,
    32 KiB blocks of records, each a 7-byte header (crc, length, kind) and its data)."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            yield record
        else:  # first, middle
            pending += chunk


def test_an_offline_wandb_run_logs_every_rows_scalars(tmp_path):
    pytest.importorskip("wandb")
    overrides = [*tiny_overrides(str(tmp_path)), "run.wandb.mode=offline"]
    config = build_lib.load(Path(CONFIGS) / "cartpole.yaml", overrides)
    summary = runs.train(config, tmp_path / "run", show_progress=False)
    assert summary["wandb_init_s"] > 0
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (path,) = glob.glob(str(tmp_path / "run" / "wandb" / "offline-run-*" / "run-*.wandb"))
    history = [
        r.history for r in wandb_records(Path(path)) if r.WhichOneof("record_type") == "history"
    ]
    assert len(history) == len(rows)
    for record, row in zip(history, rows, strict=True):
        logged = {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in record.item
        }
        assert record.step.num == row["env_steps"]
        assert logged["eval/return"] == pytest.approx(row["eval/return"])
        assert logged["loss/value"] == pytest.approx(row["loss/value"])
    assert (tmp_path / "run" / "wandb_id").read_text().strip() in path
    # The summary file W&B writes online (offline only since rlx writes it: wandb/wandb#9646).
    summary_file = Path(path).parent / "files" / "wandb-summary.json"
    written = json.loads(summary_file.read_text())
    assert written["_step"] == rows[-1]["env_steps"]
    assert written["eval/return"] == pytest.approx(rows[-1]["eval/return"])
    assert written["loss/value"] == pytest.approx(rows[-1]["loss/value"])


def test_wandb_that_does_not_start_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("wandb")
    from rlx import cli
    from rlx.run import rundir

    def fails(self, wandb, settings, run_id):
        raise RuntimeError("api key not configured (no-tty)")

    monkeypatch.setattr(rundir.Run, "_wandb_init", fails)
    args = ["train", str(Path(CONFIGS) / "cartpole.yaml"), *tiny_overrides(str(tmp_path))]
    assert cli.main([*args, "run.wandb.mode=online", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "run.wandb: W&B did not start" in err and len(err.splitlines()) == 1, err
