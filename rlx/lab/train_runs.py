"""An experiment's ``rlx train`` runs, each in its own process, resumable: a run that is done is
read, one that stopped is resumed, one that never started is started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

STALL_EXIT = 4  # rlx.core.watchdog's exit status: the run stalled, its checkpoint kept


def train_or_resume(run_dir: Path, start: list[str], cwd: Path, stall_retries: int = 0) -> dict:
    """The summary of the ``rlx train`` run in ``run_dir``, started with ``rlx train *start
    --run-dir run_dir`` or resumed where it stopped first; a stall (exit 4) is resumed up to
    ``stall_retries`` times. Any other failure ends the experiment (SystemExit naming it)."""
    summary = run_dir / "summary.json"
    for _ in range(stall_retries + 1):
        if summary.exists() and json.loads(summary.read_text()).get("status") == "completed":
            return json.loads(summary.read_text())
        if (run_dir / "config.yaml").exists():
            argv = ["train", "--resume", str(run_dir)]
        else:
            argv = ["train", *start, "--run-dir", str(run_dir)]
        code = subprocess.run([sys.executable, "-m", "rlx", *argv, "--no-progress"], cwd=cwd)
        if code.returncode not in (0, STALL_EXIT):
            raise SystemExit(f"{run_dir}: rlx train exited {code.returncode} (rerun to resume)")
    if summary.exists() and json.loads(summary.read_text()).get("status") == "completed":
        return json.loads(summary.read_text())
    raise SystemExit(f"{run_dir}: not completed after {stall_retries + 1} tries (rerun to resume)")
