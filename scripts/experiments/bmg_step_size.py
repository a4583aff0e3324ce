"""BMG's target step on the lure probe: the learned lure weight after 30 meta-iterations from 2,
for bootstrap_steps L in (1, 2) and bootstrap_step_size in (1, 8, 32).

    python scripts/experiments/bmg_step_size.py [--out docs/experiments/bmg_step_size.json]

The probe and its settings are the test suite's (``tests/test_meta.py``: ``lure_meta``, a
primary +1 for action 1 against a lure +1 for action 0 at weight 2). A small primary step
leaves a target that mostly extends what phi already does, and the harmful weight rises.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from test_meta import lure_meta  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs/experiments/bmg_step_size.json"))
    args = parser.parse_args()
    rows = []
    for steps in (1, 2):
        for size in (1.0, 8.0, 32.0):
            learner, hps = lure_meta("one_step", bootstrap_steps=steps)
            hps = hps._replace(outer=hps.outer.replace(bootstrap_step_size=jnp.float32(size)))
            state = jax.jit(learner.init)(jax.random.key(0), hps)
            chunk = jax.jit(functools.partial(learner.chunk, num_iterations=30))
            state, metrics = chunk(state, hps)
            row = {
                "bootstrap_steps": steps,
                "bootstrap_step_size": size,
                "lure_weight": float(state.phi.reward_params["lure"]),
                "bootstrap_kl_mean": float(metrics["meta/bootstrap_kl"].mean()),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    command = "python scripts/experiments/bmg_step_size.py"
    Path(args.out).write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
