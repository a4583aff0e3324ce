"""The joystick gate: ``configs/ant_joystick.yaml`` trained on fresh seeds (vmapped, one
resumable ``rlx train --seeds N`` run on MuJoCo's C engine), its final eval's forward tracking
error per seed, a video of seed 0's policy, and the sim-to-sim check of its exported policy.

  python scripts/experiments/joystick_gate.py [--seeds 4] [--seed-start 4] \\
      [--root runs/joystick] [--out docs/experiments/sim2real.json] [overrides ...]

Development runs (other seeds, settings being chosen) are recorded apart from the gate, with
no video and no sim-to-sim check:

  python scripts/experiments/joystick_gate.py --seed-start 0 --record-as joystick_development \\
      --run-dir runs/joystick/dev_seeds0-3 train.total_steps=2048000

The tracking error of a seed is its final eval's mean |v_x - cmd_x| per step (the episode sum
of the ``velocity_error`` term over the episode length, over ``eval.num_envs`` episodes) over
the forward command's range (2 x ``command_vx``). For scale: a robot that stands still scores
E|cmd_x| / range = (1 - p0) / 4 with commands uniform in [-vx, vx] and p0 the chance of a zero
command (0.225 at the defaults), so the figure is reported next to that one.

Writes (merges) into ``--out``: ``joystick`` (per-seed errors, wall time, env steps, the run)
and ``joystick_tracking_error_fraction``; then renders seed 0's policy (next to ``--out``:
``joystick_gate.mp4`` and ``joystick_gate_frames.png``, six of its frames) and runs
``scripts/sim2sim.py`` on it. Each record has every eval's error per seed (``curve``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CONFIG = "configs/ant_joystick.yaml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seed-start", type=int, default=4)
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "joystick")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/experiments/sim2real.json")
    parser.add_argument("--sim2sim-episodes", type=int, default=32)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--record-as", default="joystick",
                        help="the key in --out; any other than joystick: no video, no sim2sim, "
                        "no gate figure")  # fmt: skip
    args, overrides = parser.parse_known_args(argv)
    last_seed = args.seed_start + args.seeds - 1
    run_dir = args.run_dir or args.root / f"gate_seeds{args.seed_start}-{last_seed}"
    gate = args.record_as == "joystick"
    rlx = [sys.executable, "-m", "rlx"]
    from rlx.lab.train_runs import train_or_resume

    start = [str(ROOT / CONFIG), f"train.seed={args.seed_start}", *overrides,
             "--seeds", str(args.seeds)]  # fmt: skip
    top = train_or_resume(run_dir, start, ROOT)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    params = config["env"].get("params", {})
    command_vx = float(params.get("command_vx", 1.0))
    zero = float(params.get("zero_command_probability", 0.1))
    curves, wall = [], 0.0
    members = sorted((run_dir / "members").iterdir(), key=lambda m: int(m.name))
    for member in members:
        rows = [json.loads(r) for r in (member / "metrics.jsonl").read_text().splitlines()]
        evals = [r for r in rows if r.get("eval/length") is not None]
        curves.append([(r["env_steps"], r["eval/terms/velocity_error"] / r["eval/length"]
                        / (2 * command_vx)) for r in evals])  # fmt: skip
        wall = max(wall, rows[-1]["wall_s"])
    errors = [curve[-1][1] for curve in curves]
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data[args.record_as] = {
        "config": CONFIG,
        "overrides": overrides,
        "run_dir": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
        "seeds": list(range(args.seed_start, args.seed_start + args.seeds)),
        "steps_per_learner": top["env_steps"],
        "wall_s": wall,
        "backend": f"env.params.impl={params.get('impl', 'jax')}",
        "per_seed_tracking_error_fraction": errors,
        "video": _shown(args.out.parent / "joystick_gate.mp4") if gate else None,
        "curve": {
            "env_steps": [step for step, _ in curves[0]],
            "per_seed": [[round(e, 4) for _, e in curve] for curve in curves],
        },
        "standing_still_fraction": (1 - zero) / 4,
        "command": command,
    }
    if gate:
        data["joystick_tracking_error_fraction"] = {"value": sum(errors) / len(errors),
                                                    "command": command}  # fmt: skip
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"[joystick_gate] tracking error {sum(errors) / len(errors):.3f} of the range "
          f"(per seed {[round(e, 3) for e in errors]}; standing still {(1 - zero) / 4:.3f}), "
          f"{top['env_steps']:,} steps per seed in {wall / 60:.1f} min")  # fmt: skip
    if not gate:
        return 0
    video = args.out.parent / "joystick_gate.mp4"
    subprocess.run([*rlx, "render", _shown(members[0]), "--out", _shown(video)], cwd=ROOT,
                   check=True)  # fmt: skip
    frames(video, args.out.parent / "joystick_gate_frames.png")
    subprocess.run([sys.executable, "scripts/sim2sim.py", _shown(members[0]), "--episodes",
                    str(args.sim2sim_episodes), "--out", _shown(args.out)], cwd=ROOT,
                   check=True)  # fmt: skip
    return 0


def _shown(path: Path) -> str:
    """``path`` from the repository's root where it is inside (what a record shows)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def frames(video: Path, out: Path, count: int = 6) -> None:
    """A still of ``count`` evenly spaced frames of ``video`` (each with the strip under it:
    the command against the forward velocity, the cursor at that step), for a page that
    cannot play the video."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlx.ship.render import read_video

    shots, _ = read_video(video)
    picks = [round(i * (len(shots) - 1) / (count - 1)) for i in range(count)]
    fig, axes = plt.subplots(2, (count + 1) // 2, figsize=(4.4 * ((count + 1) // 2), 9.6))
    for ax, t in zip(axes.flat, picks, strict=False):
        ax.imshow(shots[t])
        ax.set_title(f"step {t}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
