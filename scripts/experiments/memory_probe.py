"""The memory probe of recurrent PPO: CartPole with its velocities hidden from the policy
(``configs/cartpole_memory.yaml``). Arms, each one ``rlx train --seeds N`` program (its seeds
vmapped), resumable:

- ``mlp_full``: an MLP policy observing the full state (the reference);
- ``mlp_hidden``: the MLP on the hidden velocities (positions only);
- ``gru_hidden`` / ``lstm_hidden``: a recurrent policy on the hidden velocities;
- ``gru_privileged``: the GRU policy on positions, its critic also reading the velocities
  (``observation: positions_privileged``, an asymmetric actor-critic).

  python scripts/experiments/memory_probe.py [--arms ...] [--seeds 4] [--seed-start 4] \\
      [--root runs/memory_probe] [--out docs/experiments/sim2real.json] [overrides ...]

Writes (merges) into ``--out``, as case ``memory_probe`` of its ``cases``: per arm the seeds'
final eval primary returns, their mean and 95% bootstrap interval, env steps per learner; and
``recurrent_probe_ratio`` (gru_hidden over mlp_full) and ``mlp_hidden_probe_ratio`` (mlp_hidden
over mlp_full), each with its command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CONFIG = "configs/cartpole_memory.yaml"
ARMS = {
    "mlp_full": ["env.params.observation=full", "network.memory=none",
                 "network.policy_hidden=[64,64]"],
    "mlp_hidden": ["env.params.observation=positions", "network.memory=none",
                   "network.policy_hidden=[64,64]"],
    "gru_hidden": ["env.params.observation=positions", "network.memory=gru"],
    "lstm_hidden": ["env.params.observation=positions", "network.memory=lstm"],
    "gru_privileged": ["env.params.observation=positions_privileged", "network.memory=gru"],
}  # fmt: skip


def run_arm(arm: str, seeds: int, seed_start: int, run_dir: Path, overrides: list[str]) -> list:
    """The arm's per-seed summaries, running or resuming it first when it is not done."""
    from rlx.lab.train_runs import train_or_resume

    start = [str(ROOT / CONFIG), *ARMS[arm], f"train.seed={seed_start}", *overrides,
             "--seeds", str(seeds)]  # fmt: skip
    train_or_resume(run_dir, start, ROOT)
    members = sorted((run_dir / "members").iterdir())
    return [json.loads((m / "summary.json").read_text()) for m in members]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=list(ARMS))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seed-start", type=int, default=4)
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "memory_probe")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/experiments/sim2real.json")
    args, overrides = parser.parse_known_args(argv)
    from rlx.core.stats import bootstrap_ci

    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    cases = data.setdefault("cases", {})
    probe = cases.setdefault("memory_probe", {"arms": {}})
    probe |= {"config": CONFIG, "reference": "mlp_full", "seeds": seeds}
    for arm in args.arms:
        done = run_arm(arm, args.seeds, args.seed_start, args.root / arm, overrides)
        finals = [float(d["final_eval_primary_return"]) for d in done]
        probe["arms"][arm] = {
            "overrides": ARMS[arm] + overrides,
            "per_seed": finals,
            "mean": sum(finals) / len(finals),
            "ci": bootstrap_ci(finals),
            "learners_per_seed": 1,
            "steps_per_learner": done[0]["env_steps"],
            "command": command,
        }
        print(f"[memory_probe] {arm}: {probe['arms'][arm]['mean']:.1f} {finals}", flush=True)
    arms = probe["arms"]
    for key, arm in (("recurrent_probe_ratio", "gru_hidden"), ("mlp_hidden_probe_ratio",
                                                              "mlp_hidden")):  # fmt: skip
        if arm in arms and "mlp_full" in arms:
            data[key] = {"value": arms[arm]["mean"] / arms["mlp_full"]["mean"],
                         "arms": [arm, "mlp_full"], "command": arms[arm]["command"]}  # fmt: skip
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
