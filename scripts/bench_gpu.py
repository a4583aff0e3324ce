"""The GPU figures in one short run (issue 18): what ``scripts/bench_gpu.sh`` runs on a GPU.

  python scripts/bench_gpu.py --out DIR [--smoke]

Three parts, each in its own process under its own time limit, so that one that fails or runs
long still leaves the others' figures:

1. ``train``: rlx's MJX humanoid (``configs/humanoid.yaml``, Brax's settings) at 2048 and at
   8192 envs, a few chunks each; training steps/s over the chunks after the first (the first
   holds the compile), and the compile time;
2. ``vs_brax``: ``scripts/bench_vs_brax.py --gpu --envs humanoid --seeds 1`` (Brax's own PPO
   trainer and rlx side by side, one seed each);
3. ``bilevel``: a small bilevel subset, ``scripts/experiments/bilevel.py --task humanoid --gpu``
   with arms A (hand-tuned) and E (the recommended one_step) on 8 seeds at 2M env steps each.

Writes ``DIR/bench_gpu.json`` (the device, each part's figures, status and seconds) as each part
ends. ``--smoke`` shrinks the parts to a check of the script itself on a CPU (the Brax comparison,
minutes long at its smallest sizes, is skipped).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Seconds per part: the three fit the 7 minutes the issue gives, with the install before them.
LIMITS = {"train": 120, "vs_brax": 170, "bilevel": 110}


def device() -> dict:
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "kind": devices[0].device_kind,
        "count": len(devices),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }


def run(command: list[str], limit: float) -> tuple[str, float, str]:
    """(status ok|failed|timeout, seconds, the output's tail) of ``command``."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired as stopped:
        tail = (stopped.stdout or b"")[-2000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return "timeout", time.perf_counter() - start, tail
    status = "ok" if done.returncode == 0 else "failed"
    return status, time.perf_counter() - start, (done.stdout + done.stderr)[-2000:]


def train_rates(out: Path, smoke: bool) -> dict:
    """Humanoid training steps/s at 2048 and 8192 envs."""
    sizes = [(64, 4)] if smoke else [(2048, 4), (8192, 3)]
    figures = {}
    for num_envs, chunks in sizes:
        run_dir = out / f"humanoid-{num_envs}"
        unroll, iterations = (4, 1) if smoke else (20, 5)
        steps = num_envs * unroll * iterations * chunks
        command = [
            sys.executable, "-m", "rlx", "train", "configs/humanoid.yaml",
            "--run-dir", str(run_dir), "--no-progress",
            f"train.num_envs={num_envs}", f"train.unroll_length={unroll}",
            f"train.total_steps={steps}", f"run.chunk_iterations={iterations}",
            "train.num_minibatches=8" if not smoke else "train.num_minibatches=2",
            "eval.every_chunks=1000", "eval.num_envs=16", "run.checkpoint=false",
            "run.tensorboard=false", "run.compilation_cache=",
        ]  # fmt: skip
        if smoke:
            command.append("env.params.episode_length=16")
        status, seconds, tail = run(command, LIMITS["train"] / len(sizes))
        entry = {"status": status, "seconds": seconds}
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists():
            rows = [json.loads(r) for r in metrics.read_text().splitlines() if r]
            later = [r["train/steps_per_s"] for r in rows[1:]]
            entry |= {
                "chunks": len(rows),
                "train_steps_per_s": sum(later) / len(later) if later else None,
                "compile_s": rows[0].get("compile_s") if rows else None,
            }
        if status != "ok":
            entry["tail"] = tail
        figures[str(num_envs)] = entry
    return figures


def vs_brax(out: Path, smoke: bool) -> dict:
    if smoke:  # its smallest sizes are the CPU benchmark's, minutes long
        return {"status": "skipped (smoke)"}
    command = [
        sys.executable, "scripts/bench_vs_brax.py", "--envs", "humanoid", "--seeds", "1",
        "--out", str(out / "bench_vs_brax_gpu.json"), "--runs", str(out / "vs-brax-runs"),
        "--gpu",
    ]  # fmt: skip
    status, seconds, tail = run(command, LIMITS["vs_brax"])
    entry = {"status": status, "seconds": seconds, "tail": tail[-800:]}
    path = out / "bench_vs_brax_gpu.json"
    if path.exists():
        entry["result"] = json.loads(path.read_text())
    return entry


def bilevel(out: Path, smoke: bool) -> dict:
    name = out / "bilevel_humanoid_gpu_subset"
    steps = 4096 if smoke else 2_000_000
    command = [
        sys.executable, "scripts/experiments/bilevel.py", "--task", "humanoid",
        "--arms", "AE", "--seeds", "2" if smoke else "8", "--out", str(name),
        f"train.total_steps={steps}",
    ]  # fmt: skip
    if not smoke:
        command.insert(4, "--gpu")
    else:
        command += ["train.num_envs=16", "eval.num_envs=4", "env.params.episode_length=16"]
    status, seconds, tail = run(command, LIMITS["bilevel"])
    entry = {"status": status, "seconds": seconds, "tail": tail[-800:]}
    if name.with_suffix(".json").exists():
        arms = json.loads(name.with_suffix(".json").read_text())["arms"]
        entry["arms"] = {
            k: {"mean": v["mean"], "ci95": v["ci95"], "wall_s": v["wall_s"]}
            for k, v in arms.items()
        }
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", action="store_true", help="seconds-long parts, for a CPU")
    args = parser.parse_args()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": device(), "command": " ".join(sys.argv), "parts": {}}
    for name, part in (("train", train_rates), ("vs_brax", vs_brax), ("bilevel", bilevel)):
        start = time.perf_counter()
        try:
            report["parts"][name] = part(out, args.smoke)
        except Exception as error:  # noqa: BLE001 (a part that breaks leaves the others)
            report["parts"][name] = {
                "status": "failed",
                "error": f"{type(error).__name__}: {error}",
            }
        report["parts"][name]["part_s"] = time.perf_counter() - start
        (out / "bench_gpu.json").write_text(json.dumps(report, indent=1) + "\n")
        part = report["parts"][name]
        status = part.get("status") or {k: v["status"] for k, v in part.items() if "status" in v}
        print(f"[bench_gpu] {name}: {status}", flush=True)
    print(json.dumps(report["parts"]["train"], indent=1), flush=True)


if __name__ == "__main__":
    main()
