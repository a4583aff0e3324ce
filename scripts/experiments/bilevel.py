"""Bilevel reward optimisation against fixed rewards: the arms of issue 5, seeds vmapped.

    python scripts/experiments/bilevel.py --task cartpole --aux bad --seeds 16
    python scripts/experiments/bilevel.py --task cartpole --aux good --seeds 16
    python scripts/experiments/bilevel.py --task gridworld --seeds 16
    python scripts/experiments/bilevel.py --task halfcheetah --seeds 4 --arms ABDE
    python scripts/experiments/bilevel.py --task humanoid --seeds 4 --arms ABDE
    python scripts/experiments/bilevel.py --task halfcheetah --gpu   # 16 seeds, GPU sizes

The tasks and arms A-I are ``rlx.lab.bilevel``'s (H and I run only when named in --arms).
Writes <out>.json (per-seed curves and finals, learned weights, each arm's wall time), <out>.md
(table with 95% bootstrap confidence intervals) and <out>.png (eval primary return and learned
weight curves, one colour per arm, the start and reference weights as lines). An arm
checkpoints its seeds' states at every eval point under runs/bilevel/<out name>/<arm>/;
``--resume`` keeps the finished arms and continues a stopped one from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rlx.core import runtime  # noqa: E402
from rlx.core.stats import bootstrap_ci  # noqa: E402
from rlx.lab.bilevel import (  # noqa: E402
    DEFAULT_TASK,
    TASKS,
    Experiment,
    arm_from,
    arms,
    learned,
    learned_names,
    load,
    method_label,
    run_arm,
    write,
)
from rlx.run import driver  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=tuple(TASKS), default=DEFAULT_TASK)
    parser.add_argument("--aux", choices=("bad", "good"), default="bad")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="default 16 (4 on a CPU for halfcheetah and humanoid)",
    )
    parser.add_argument(
        "--seed-start",
        type=int,
        default=0,
        help="first seed: --seed-start 4 --seeds 8 runs seeds 4-11 (fresh seeds for a setting "
        "chosen on seeds 0-3)",
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="GPU scale: 16 seeds and the task's larger sizes (more envs, millions of steps)",
    )
    parser.add_argument(
        "--arms", default="ABCDEFG", help="which arms to run, e.g. ABDE (H and I when named)"
    )
    parser.add_argument(
        "--out", help="output prefix (default docs/experiments/bilevel_<task>_<aux>)"
    )
    parser.add_argument(
        "--stall-s",
        type=float,
        default=300.0,
        help="restart an arm whose process printed nothing for this long (see README: the "
        "jaxlib CPU runtime can wedge)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the arms already in <out>.json (an interrupted run) and run the rest",
    )
    parser.add_argument(
        "--meta-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for the meta arms only (repeatable), e.g. --meta-set "
        "reward.parameterization=log_scale: the fixed arms stay exactly as they are",
    )
    parser.add_argument(
        "--arm-from",
        action="append",
        default=[],
        metavar="ARM=FILE",
        help="take a fixed arm's results from another run's JSON (e.g. A=docs/experiments/"
        "bilevel_humanoid_gate.json), its seeds in this run's range: that run must have "
        "covered them, with the same arm settings and budget",
    )
    parser.add_argument("--one-arm", help=argparse.SUPPRESS)  # internal: run one arm, print JSON
    parser.add_argument("--arm-dir", help=argparse.SUPPRESS)  # internal: the arm's checkpoints
    parser.add_argument("overrides", nargs="*", help="dotted.key=value for every arm's config")
    args = parser.parse_args()
    task = TASKS[args.task]
    heavy = "gpu" in task
    if args.seeds is None:
        args.seeds = 4 if heavy and not args.gpu else 16
    if args.gpu:  # the task's GPU sizes first: the command line's overrides still win
        args.overrides = [*task.get("gpu", []), *args.overrides]
    experiment = Experiment(args.task, args.aux, args.seeds, args.seed_start, tuple(args.overrides))
    names = learned_names(task, args.aux)
    label = "poor" if "poor" in task else args.aux
    if args.one_arm:
        runtime.configure()  # CPU: synchronous dispatch (see README, Known issues)
        driver.enable_compilation_cache("~/.cache/rlx/jax")
        kind, overrides = arms(task, args.aux)[args.one_arm]
        cli = args.overrides + (args.meta_set if kind == "meta" else [])
        cfg = load(ROOT / task["config"], overrides, cli)
        arm_dir = Path(args.arm_dir) if args.arm_dir else None
        result = run_arm(kind, cfg, args.seeds, names, arm_dir, seed_start=args.seed_start)
        result["kind"] = kind if kind == "plain" else method_label(cfg.meta)
        result["overrides"] = overrides
        print("RESULT " + json.dumps(result), flush=True)
        return
    out = Path(args.out or ROOT / f"docs/experiments/bilevel_{args.task}_{label}")
    out.parent.mkdir(parents=True, exist_ok=True)
    results, commands = {}, []
    # Per-arm checkpoints of the arms not finished yet, where run directories go (git-ignored).
    arms_dir = ROOT / "runs" / "bilevel" / out.name
    if args.resume and out.with_suffix(".json").exists():
        previous = json.loads(out.with_suffix(".json").read_text())
        results, commands = previous["arms"], previous["meta"]["commands"]
    if not args.resume:
        shutil.rmtree(arms_dir, ignore_errors=True)
    # Recorded relative to the repo, so the command reads the same in any checkout.
    argv = [str(Path(a).relative_to(ROOT)) if a.startswith(f"{ROOT}/") else a for a in sys.argv]
    commands.append("python " + " ".join(argv))
    for spec in args.arm_from:
        arm, _, source = spec.partition("=")
        results[arm] = arm_from(arm, Path(source), experiment, ROOT)
        print(f"[bilevel] arm {arm}: from {source}, final {results[arm]['mean']:.1f}")
    for arm, (kind, _) in arms(task, args.aux).items():
        if arm not in args.arms or arm in results:
            continue
        print(f"[bilevel] arm {arm} ({kind})", flush=True)
        result = run_in_child(arm, args, arms_dir / arm)
        final = np.asarray(result["final"])
        result["ci95"] = bootstrap_ci(final)
        result["mean"] = float(final.mean())
        results[arm] = result
        print(
            f"[bilevel]   {result['kind']}: final eval primary {final.mean():.1f} "
            f"[{result['ci95'][0]:.1f}, {result['ci95'][1]:.1f}]"
            + (f", learned weights {learned(result)}" if learned(result) else "")
            + f", {result['wall_s']:.0f} s"
            + (f" ({result['restarts']} restart(s) after a stall)" if result["restarts"] else ""),
            flush=True,
        )
        write(out, experiment, names, results, commands)
        shutil.rmtree(arms_dir / arm, ignore_errors=True)  # its result is in the JSON now
    write(out, experiment, names, results, commands)
    if arms_dir.is_dir() and not any(arms_dir.iterdir()):
        arms_dir.rmdir()


def run_in_child(arm: str, args, arm_dir: Path, tries: int = 3) -> dict:
    """Runs one arm in a child process; restarts it (same seeds, same result) when it prints
    nothing for ``args.stall_s`` seconds, which is how a wedged jaxlib CPU runtime shows."""
    import selectors
    import subprocess

    command = [sys.executable, __file__, "--one-arm", arm, "--task", args.task]
    command += ["--arm-dir", str(arm_dir)]
    command += ["--aux", args.aux, "--seeds", str(args.seeds)]
    command += ["--seed-start", str(args.seed_start)]
    command += [f"--meta-set={item}" for item in args.meta_set] + args.overrides
    for attempt in range(tries):
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        selector = selectors.DefaultSelector()
        selector.register(child.stdout, selectors.EVENT_READ)
        result = None
        while True:
            if not selector.select(timeout=args.stall_s):
                print(f"[bilevel]   arm {arm}: no output for {args.stall_s:.0f} s, restarting")
                child.kill()
                break
            line = child.stdout.readline()
            if not line:
                break
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
            else:
                print(line, end="", flush=True)
        child.wait()
        if result is not None:
            result["restarts"] = attempt
            return result
        if child.returncode not in (0, -9):
            raise SystemExit(f"arm {arm} failed (exit {child.returncode})")
    raise SystemExit(f"arm {arm} stalled {tries} times")


if __name__ == "__main__":
    main()
