"""Two processes of one CPU device each against one process of two devices (issue 18's aim):
the same run's training steps/s, alternating, to show what gloo's collectives cost.

  python scripts/bench_processes.py [--rounds 2] [--config configs/cartpole.yaml]
      [--out docs/bench/bench_processes.json] [overrides ...]

Each measurement is fresh processes running ``rlx train`` with the same config: ``one`` is one
process with ``--xla_force_host_platform_device_count=2``; ``two`` is two processes joined by
``--coordinator 127.0.0.1:PORT``. Training steps/s is the mean of ``train/steps_per_s`` over the
chunks after the first (the first holds the compile), read from the run's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULTS = [
    "train.total_steps=327680",
    "train.num_envs=32",
    "train.unroll_length=128",
    "run.chunk_iterations=10",
    "eval.every_chunks=1000",
    "run.tensorboard=false",
    "run.checkpoint=false",
    "run.compilation_cache=",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(kind: str, config: str, overrides: list[str], root: Path) -> dict:
    run_dir = root / f"{kind}-{time.monotonic_ns()}"
    base = [sys.executable, "-m", "rlx", "train", config, *overrides, "--run-dir", str(run_dir)]
    base.append("--no-progress")
    env = dict(os.environ)
    start = time.perf_counter()
    if kind == "one":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
        procs = [subprocess.Popen(base, env=env, cwd=REPO, stdout=subprocess.DEVNULL)]
    else:
        port = free_port()
        flags = lambda i: (
            ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
            + [
                "--process-id",
                str(i),
            ]
        )
        procs = [
            subprocess.Popen([*base, *flags(i)], env=env, cwd=REPO, stdout=subprocess.DEVNULL)
            for i in range(2)
        ]
    codes = [p.wait(timeout=1800) for p in procs]
    wall = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"{kind}: exit {codes}")
    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines() if r]
    later = [r["train/steps_per_s"] for r in rows[1:]]
    return {
        "steps_per_s": statistics.mean(later),
        "wall_s": wall,
        "compile_s": rows[0]["compile_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default="configs/cartpole.yaml")
    parser.add_argument("--out", default=str(REPO / "docs/bench/bench_processes.json"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = [*DEFAULTS, *args.overrides]
    results: dict[str, list] = {"one": [], "two": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for kind in ("one", "two") if r % 2 == 0 else ("two", "one"):
                results[kind].append(measure(kind, args.config, overrides, Path(tmp)))
                print(f"[bench_processes] round {r + 1} {kind}: {results[kind][-1]}", flush=True)
    one = statistics.median(m["steps_per_s"] for m in results["one"])
    two = statistics.median(m["steps_per_s"] for m in results["two"])
    report = {
        "command": " ".join(["python", "scripts/bench_processes.py", *sys.argv[1:]]),
        "config": args.config,
        "overrides": overrides,
        "machine": f"{os.cpu_count()} CPU cores",
        "one_process_two_devices": results["one"],
        "two_processes_one_device": results["two"],
        "ratio_two_over_one": two / one,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"[bench_processes] 2 processes x 1 device: {two:,.0f} steps/s; 1 process x 2 devices: "
        f"{one:,.0f} steps/s; ratio {two / one:.3f} ({args.out})",
        flush=True,
    )


if __name__ == "__main__":
    main()
