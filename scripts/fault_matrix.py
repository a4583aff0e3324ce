"""The fault matrix: kill, interrupt and damage short rlx runs, resume them, and check that every
resumed run's metrics are bit-identical to the uninterrupted run's.

  python scripts/fault_matrix.py [--seed 0] [--out docs/bench/fault_matrix.md] [--quick]

Against two short runs (``configs/cartpole.yaml`` with ``rlx train`` and
``configs/meta/cartpole_anti_pd.yaml`` with ``rlx meta``, shrunk by ``SIZES``), seeded:

* **named fault points**: ``RLX_FAULT=<point>:<n>`` (see ``rlx/core/interrupts.py``) kills the
process
  with SIGKILL at compile, after the n-th chunk, mid-eval, with half a metrics row written, or
  mid-checkpoint-write;
* **signals at random moments**: SIGKILL, SIGTERM, SIGINT, and a double SIGINT, at a time drawn
  uniformly over the uninterrupted run's wall time (so from process start-up to the last chunk);
* **chains**: three kills of one run in a row;
* **damaged files**: the newest checkpoint's data cut short, a bit flipped, its record emptied,
  the last metrics line truncated, after a run was stopped part-way;
* **bad input**: command lines that must fail with exit 2 and one line, writing nothing.

A stopped run is finished by ``rlx <cmd> --resume RUN_DIR`` (or, for a run killed before it wrote
anything, by the same command again), repeatedly until it completes. Every rlx process runs with
its cwd in a scratch directory outside the repo. Writes a Markdown report (cases, what happened,
and the totals) to ``--out`` and the same as JSON beside it. Exit status 0 only when every case
held. ``--quick`` runs one case per kind (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = ("wall_s", "train/steps_per_s", "chunk_s", "eval_s", "compile_s", "trace_s")
SIZES = [
    "train.num_envs=8",
    "train.unroll_length=32",
    "train.num_minibatches=2",
    "train.num_epochs=2",
    "run.chunk_iterations=2",
    "eval.num_envs=4",
    "eval.every_chunks=1",
    "run.max_checkpoints=2",
]
TARGETS = {
    "train": ("train", "configs/cartpole.yaml", ["train.total_steps=3072"]),  # 6 chunks
    "meta": ("meta", "configs/meta/cartpole_anti_pd.yaml", ["train.total_steps=3072"]),
}
POINTS = ("compile", "chunk", "eval", "metrics", "checkpoint")
CHUNKS = 6


class Matrix:
    def __init__(self, scratch: Path, rng: random.Random):
        self.scratch, self.rng, self.cases, self.reference, self.wall = scratch, rng, [], {}, {}

    # -- processes ------------------------------------------------------------------------
    def command(self, target: str, run_dir: Path) -> list[str]:
        cmd, config, extra = TARGETS[target]
        return [cmd, str(REPO / config), *SIZES, *extra, "--run-dir", str(run_dir), "--no-progress"]

    def start(self, args: list[str], fault: str | None = None) -> subprocess.Popen:
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        env.pop("RLX_FAULT", None)
        if fault:
            env["RLX_FAULT"] = fault
        return subprocess.Popen(
            [sys.executable, "-m", "rlx", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.scratch,
            env=env,
        )

    def run(self, args: list[str], fault: str | None = None) -> tuple[int, str, str]:
        process = self.start(args, fault)
        out, err = process.communicate(timeout=600)
        return process.returncode, out, err

    def finish(self, target: str, run_dir: Path, history: list) -> bool:
        """Resumes (or restarts, when nothing was written) until the run completes."""
        cmd = TARGETS[target][0]
        for _ in range(6):
            if not (run_dir / "config.yaml").exists():
                code, _, err = self.run(self.command(target, run_dir))
                history.append(("rerun", code))
            else:
                code, _, err = self.run([cmd, "--resume", str(run_dir), "--no-progress"])
                history.append(("resume", code))
            if code == 0 and summary_status(run_dir) == "completed":
                return True
            if code not in (0, -9, 130, 143):
                history.append(("error", err.strip().splitlines()[-1:]))
                return False
        return False

    # -- cases ----------------------------------------------------------------------------
    def reference_runs(self) -> None:
        """Each target uninterrupted, twice: the second's metrics must equal the first's (runs
        are reproducible), and its wall time (compilation cache warm, as for every later run)
        is the window random signals are drawn in."""
        for target in TARGETS:
            runs = []
            for i in range(2):
                run_dir = self.scratch / f"reference-{target}-{i}"
                start = time.perf_counter()
                code, _, err = self.run(self.command(target, run_dir))
                self.wall[target] = time.perf_counter() - start
                if code != 0:
                    raise SystemExit(f"reference {target} run failed: {err.strip()[-500:]}")
                runs.append(metrics(run_dir))
            if runs[0] != runs[1]:
                raise SystemExit(f"reference {target}: two uninterrupted runs differ")
            self.reference[target] = runs[0]

    def record(self, name, target, kind, kills, history, ok, note="") -> None:
        history = json.loads(
            json.dumps(history).replace(str(REPO), "<repo>").replace(sys.executable, "<python>")
        )
        self.cases.append(
            {
                "case": name,
                "target": target,
                "kind": kind,
                "kills": kills,
                "history": history,
                "ok": bool(ok),
                "note": note,
            }
        )
        status = "ok" if ok else "FAILED"
        print(f"[fault_matrix] {status:6} {name} ({target}): {history} {note}", flush=True)

    def identical(self, target: str, run_dir: Path) -> bool:
        return metrics(run_dir) == self.reference[target]

    def fault_point(self, target: str, point: str, n: int) -> None:
        run_dir = self.fresh_dir()
        code, _, _ = self.run(self.command(target, run_dir), f"{point}:{n}")
        history = [(f"RLX_FAULT={point}:{n}", code)]
        done = self.finish(target, run_dir, history)
        ok = code == -9 and done and self.identical(target, run_dir)
        self.record(f"fault {point}:{n}", target, "fault point", 1, history, ok)

    def signal_at_random(self, target: str, signum: int, double: bool = False) -> None:
        run_dir = self.fresh_dir()
        delay = self.rng.uniform(0.0, self.wall[target])
        process = self.start(self.command(target, run_dir))
        time.sleep(delay)
        process.send_signal(signum)
        if double:
            time.sleep(self.rng.uniform(0.05, 0.5))
            process.send_signal(signum)
        out, err = process.communicate(timeout=600)
        name = ("double " if double else "") + signal.Signals(signum).name
        history = [(f"{name} at {delay:.1f}s", process.returncode)]
        tracebacks = "Traceback" in err
        # A graceful stop (one signal) writes summary.json once the run started; a second
        # signal ends the process at once (rlx.core.watchdog), so only the resume is checked.
        graceful = not double and signum != signal.SIGKILL and process.returncode == 128 + signum
        # ... or, stopped before the run started, writes nothing at all.
        summary_ok = not graceful or (
            summary_status(run_dir) in ("interrupted", "completed") or not run_dir.exists()
        )
        if process.returncode == 0:  # the signal came after the last chunk
            summary_ok = summary_status(run_dir) == "completed"
        done = self.finish(target, run_dir, history)
        ok = done and self.identical(target, run_dir) and not tracebacks and summary_ok
        note = "traceback on stderr" if tracebacks else ""
        kills = 0 if process.returncode == 0 else 1
        self.record(f"{name} at random", target, "signal", kills, history, ok, note)

    def chain(self, target: str, kills: int = 3) -> None:
        run_dir = self.fresh_dir()
        history = []
        for _ in range(kills):
            args = self.command(target, run_dir)
            if (run_dir / "config.yaml").exists():
                args = [TARGETS[target][0], "--resume", str(run_dir), "--no-progress"]
            point = self.rng.choice(POINTS[1:])
            code, _, _ = self.run(args, f"{point}:{self.rng.randint(1, 2)}")
            history.append((point, code))
        done = self.finish(target, run_dir, history)
        ok = done and self.identical(target, run_dir)
        self.record(f"chain of {kills} kills", target, "chain", kills, history, ok)

    def damaged(self, target: str, how: str) -> None:
        run_dir = self.fresh_dir()
        code, _, _ = self.run(self.command(target, run_dir), "chunk:4")  # checkpoints 2 and 3
        history = [("RLX_FAULT=chunk:4", code)]
        damage(run_dir, how)
        done = self.finish(target, run_dir, history)
        moved = how == "metrics line" or (run_dir / "checkpoints" / "damaged").is_dir()
        ok = code == -9 and done and moved and self.identical(target, run_dir)
        self.record(f"damaged: {how}", target, "damaged file", 1, history, ok)

    def bad_input(self, name: str, args: list[str]) -> None:
        run_dir = self.fresh_dir()
        code, out, err = self.run([*args, "--run-dir", str(run_dir), "--no-progress"])
        lines = err.strip().splitlines()
        ok = code == 2 and len(lines) == 1 and not run_dir.exists()
        self.record(f"bad input: {name}", "-", "bad input", 0, [(lines[-1:], code)], ok)

    def fresh_dir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.scratch, prefix="run-")) / "run"


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def summary_status(run_dir: Path) -> str | None:
    path = run_dir / "summary.json"
    return json.loads(path.read_text())["status"] if path.exists() else None


def damage(run_dir: Path, how: str) -> None:
    if how == "metrics line":
        path = run_dir / "metrics.jsonl"
        text = path.read_text()
        path.write_text(text + text.splitlines()[-1][:20])
        return
    newest = max(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    step_dir = run_dir / "checkpoints" / str(newest)
    if how == "empty record":
        (step_dir / "meta" / "metadata").write_text("")
        return
    for data in [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]:
        raw = bytearray(data.read_bytes())
        if how == "truncated data":
            data.write_bytes(raw[: len(raw) // 2])
        else:
            raw[len(raw) // 2] ^= 0x04
            data.write_bytes(bytes(raw))


CART = str(REPO / "configs/cartpole.yaml")
BAD_INPUTS = {
    "directory as config": ["train", str(REPO / "configs")],
    "binary file as config": ["train", sys.executable],
    "malformed override": ["train", CART, "train.seed=[1"],
    "yaml tag in override": ["train", CART, "x=!!python/name:os"],
    "seed overflow": ["train", CART, "train.seed=1e30"],
    "iterations overflow": ["train", CART, "train.total_steps=1e15"],
    "negative layer": ["train", CART, "network.policy_hidden=[-5]"],
    "zero episode length": ["train", CART, "env.params.episode_length=0"],
}


def cases(matrix: Matrix, rng: random.Random, quick: bool) -> None:
    targets = list(TARGETS)
    for target in targets:
        points = [("compile", 1)] + [(p, rng.randint(1, CHUNKS - 1)) for p in POINTS[1:]]
        for point, n in points[:2] if quick else points:
            matrix.fault_point(target, point, n)
        signals = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
        for signum in signals[:1] if quick else signals * 3:
            matrix.signal_at_random(target, signum)
        matrix.signal_at_random(target, signal.SIGINT, double=True)
        matrix.chain(target)
        hows = ["truncated data", "bit flip", "empty record", "metrics line"]
        for how in hows[:1] if quick else hows:
            matrix.damaged(target, how)
    for name, args in list(BAD_INPUTS.items())[: 2 if quick else None]:
        matrix.bad_input(name, args)


def report(matrix: Matrix, args, elapsed: float) -> str:
    kills = sum(c["kills"] for c in matrix.cases)
    resumed = [c for c in matrix.cases if c["kind"] != "bad input"]
    held = sum(c["ok"] for c in matrix.cases)
    lines = [
        "# Fault matrix",
        "",
        f"`python scripts/fault_matrix.py --seed {args.seed}{' --quick' if args.quick else ''}`"
        f" ({elapsed / 60:.1f} min on this machine). Every stopped run was finished by "
        "`--resume` (or the same command again when nothing was written) and its metrics.jsonl "
        "compared with the uninterrupted run's, every column but the timings, bit for bit.",
        "",
        f"**{held} of {len(matrix.cases)} cases held**; {kills} kills or signals that stopped a "
        f"run; {sum(c['ok'] for c in resumed)} of {len(resumed)} faulted runs (a signal that came "
        "after the last chunk stops nothing) ended with metrics identical to the uninterrupted "
        "run.",
        "",
        "Uninterrupted runs: " + ", ".join(f"{t} {w:.1f} s" for t, w in matrix.wall.items()) + ".",
        "",
        "| case | run | what happened (step, exit status) | held |",
        "|---|---|---|---|",
    ]
    for c in matrix.cases:
        steps = "; ".join(f"{what} -> {code}" for what, code in c["history"])
        mark = "yes" if c["ok"] else f"**no** {c['note']}"
        lines.append(f"| {c['case']} | {c['target']} | {steps} | {mark} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "fault_matrix.md"))
    parser.add_argument("--quick", action="store_true", help="one case per kind")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="rlx-fault-matrix-"))
    start = time.perf_counter()
    try:
        matrix = Matrix(scratch, rng)
        matrix.reference_runs()
        cases(matrix, rng, args.quick)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(matrix, args, elapsed))
    out.with_suffix(".json").write_text(json.dumps(matrix.cases, indent=1) + "\n")
    failed = [c["case"] for c in matrix.cases if not c["ok"]]
    print(f"[fault_matrix] {len(matrix.cases) - len(failed)}/{len(matrix.cases)} held; {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
