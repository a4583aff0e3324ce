"""Training with videos off costs nothing: this checkout against BASE_REV (before the video
feature), the same run alternating, the median train steps/s and wall time of each.

  python scripts/bench_video_off.py BASE_REV [--rounds 3] [--config configs/cartpole.yaml]

BASE_REV is checked out into a scratch git worktree; both sides run ``rlx train CONFIG`` in a
fresh process with the compilation cache off, from their own source tree (``sys.path``), and
the run's own summary gives its wall time and the rows their steps/s (compile excluded). Writes
``docs/bench/bench_video_off.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RUN = (
    "import sys; sys.path.insert(0, sys.argv[1]); from rlx.cli import main; "
    "sys.exit(main(['train', *sys.argv[2:]]))"
)


def one_run(tree: Path, config: Path, run_dir: Path, overrides: list[str]) -> dict:
    command = [sys.executable, "-c", RUN, str(tree), str(config), "--no-progress"]
    command += ["--run-dir", str(run_dir), "run.compilation_cache=", *overrides]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=run_dir.parent)
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["train/steps_per_s"] for r in rows[1:]]  # the first chunk's includes no compile
    return {"wall_s": summary["wall_s"], "steps_per_s": float(np.median(rates))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--config", default="configs/cartpole.yaml")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "bench_video_off.json"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-video-off-"))
    base_tree = scratch / "base"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base_tree), args.base],
        check=True,
    )
    results = {"base": [], "head": []}
    try:
        for r in range(args.rounds):
            for side, tree in (("base", base_tree), ("head", REPO)):
                run_dir = scratch / f"{side}-{r}"
                out = one_run(tree, tree / args.config, run_dir, args.overrides)
                results[side].append(out)
                print(f"[bench_video_off] round {r + 1} {side}: {out}", flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)])
        shutil.rmtree(scratch, ignore_errors=True)
    median = {
        side: {k: float(np.median([x[k] for x in runs])) for k in ("wall_s", "steps_per_s")}
        for side, runs in results.items()
    }
    ratio = median["head"]["steps_per_s"] / median["base"]["steps_per_s"]
    out = {
        "command": " ".join(["python", "scripts/bench_video_off.py", *sys.argv[1:]]),
        "machine": platform.machine(),
        "runs": results,
        "median": median,
        "steps_per_s_head_over_base": ratio,
        "wall_head_over_base": median["head"]["wall_s"] / median["base"]["wall_s"],
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"[bench_video_off] videos off, steps/s this checkout / {args.base}: {ratio:.3f} "
        f"(wall {out['wall_head_over_base']:.3f}); written to {args.out}",
        flush=True,
    )


if __name__ == "__main__":
    main()
