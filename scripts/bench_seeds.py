"""What ``rlx train --seeds N`` costs against one seed: whole CLI processes, alternating.

Each round runs ``rlx train CONFIG`` (one seed) and ``rlx train CONFIG --seeds N`` as separate
processes, in turn, with the compilation cache off (compile counted in full) and no progress
output; the process wall time includes start-up, build, compile, every chunk, eval and
checkpoints. Writes the per-round times and the ratio (N seeds / 1 seed) to ``--out``.

  python scripts/bench_seeds.py [--config configs/cartpole.yaml] [--seeds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cartpole.yaml")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "bench_seeds.json"))
    parser.add_argument("overrides", nargs="*", help="dotted.key=value for both commands")
    args = parser.parse_args()
    rlx = [sys.executable, "-m", "rlx", "train", str(REPO / args.config), "--no-progress"]
    common = ["run.compilation_cache=", *args.overrides]
    times: dict[str, list[float]] = {"1": [], str(args.seeds): []}
    scratch = Path(tempfile.mkdtemp(prefix="bench-seeds-"))
    try:
        for r in range(args.rounds):
            for n in (1, args.seeds):
                run_dir = scratch / f"{n}-{r}"
                extra = ["--seeds", str(n)] if n > 1 else []
                seconds = timed([*rlx, *extra, "--run-dir", str(run_dir), *common])
                times[str(n)].append(seconds)
                print(f"[bench_seeds] round {r + 1}: {n} seed(s) {seconds:.1f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    one, many = np.asarray(times["1"]), np.asarray(times[str(args.seeds)])
    ratios = (many / one).tolist()
    out = {
        "config": args.config,
        "overrides": args.overrides,
        "seeds": args.seeds,
        "seconds": times,
        "ratio_per_round": ratios,
        "ratio_of_means": float(many.mean() / one.mean()),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "command": " ".join(["python", "scripts/bench_seeds.py", *sys.argv[1:]]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"[bench_seeds] {args.seeds} seeds / 1 seed: {out['ratio_of_means']:.2f}x "
        f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}); written to {args.out}",
        flush=True,
    )


if __name__ == "__main__":
    main()
