"""One process of a multi-process run for tests/test_distributed.py (not a test itself).

    python tests/distributed_worker.py KIND RUN_DIR PORT NUM_PROCESSES PROCESS_ID [MAX_CHUNKS]
        [--resume] [--steps N]

KIND: ``train`` (cartpole) or ``meta`` (one_step on cartpole's PD auxiliary), at tiny sizes with
4 envs, so 2 processes of 1 CPU device each split the env batch. ``NUM_PROCESSES`` 1 with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` is the one-process reference.
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

parser = argparse.ArgumentParser()
for name in ("kind", "run_dir", "port"):
    parser.add_argument(name)
parser.add_argument("num_processes", type=int)
parser.add_argument("process_id", type=int)
parser.add_argument("max_chunks", type=int, nargs="?")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--steps", type=int, default=128)
args = parser.parse_args()

from rlx.core import runtime  # noqa: E402

if args.num_processes > 1:
    runtime.distributed(f"127.0.0.1:{args.port}", args.num_processes, args.process_id, 10)

from conftest import CONFIGS, tiny_overrides  # noqa: E402
from rlx import runs  # noqa: E402
from rlx.config import build as build_lib  # noqa: E402

overrides = [
    *tiny_overrides(str(Path(args.run_dir).parent)),
    "train.num_envs=4",
    f"train.total_steps={args.steps}",
    "run.chunk_iterations=1",
]
if args.kind == "train":
    config = build_lib.load(Path(CONFIGS) / "cartpole.yaml", overrides)
    run = runs.train
else:
    run = runs.meta

    meta = [
        "meta.method=one_step",
        f"train.total_steps={args.steps}",
    ]
    config = build_lib.load(Path(CONFIGS) / "meta" / "cartpole_anti_pd.yaml", [*overrides, *meta])
summary = run(
    config, args.run_dir, resume=args.resume, show_progress=False, max_chunks=args.max_chunks
)
print("SUMMARY " + json.dumps({"status": summary["status"], "chunks": summary["chunks"]}))
