"""``rlx train|meta CONFIG [dotted.key=value ...]`` and ``rlx train|meta --resume RUN_DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlx", description="JAX-native RL for robot control")
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "train": "train PPO on a config",
        "meta": "meta-learn the reward params (the config's meta section) around PPO",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text)
        sub.add_argument("config", nargs="?", help="YAML config, e.g. configs/cartpole.yaml")
        sub.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
        sub.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
        sub.add_argument("--run-dir", help="run directory (default runs/<config>-<UTC time>)")
        sub.add_argument("--no-progress", action="store_true", help="no progress output")
        sub.add_argument(
            "--allow-config-change",
            action="store_true",
            help="with --resume: accept an edited config.yaml (the change is recorded)",
        )
        if name == "train":
            sub.add_argument(
                "--seeds",
                type=int,
                default=1,
                metavar="N",
                help="train N seeds (train.seed, +1, ...) vmapped in one program",
            )
            sub.add_argument(
                "--sweep",
                action="append",
                default=[],
                metavar="KEY=V1,V2",
                help="also vmap over these values of a traced key (ppo.*, reward numbers); "
                "repeat for a grid",
            )
    return parser


def _fail(message: str) -> int:
    print(f"rlx: error: {message}", file=sys.stderr)
    return 2


def train_command(args: argparse.Namespace) -> int:
    """``rlx train`` and ``rlx meta``: every check of the input and the run directory first,
    then the run; a one-line error (exit 2) for anything refused, nothing written."""
    from rlx import config as config_lib
    from rlx import rundir

    members = getattr(args, "seeds", 1) != 1 or bool(getattr(args, "sweep", []))
    if getattr(args, "seeds", 1) < 1:
        return _fail(f"--seeds {args.seeds}: must be at least 1")
    try:
        _split_cpu(args, members)
    except config_lib.ConfigError as error:
        return _fail(str(error))
    try:
        if args.resume:
            if members:
                return _fail(
                    "--resume continues a run as it was started; give no --seeds/--sweep "
                    "(a members run keeps them in its members.json)"
                )
            if args.config or args.overrides:
                return _fail("--resume takes the run's own config.yaml; give no CONFIG/overrides")
            if args.run_dir:
                return _fail(
                    "--resume RUN_DIR continues that run in its directory; give no --run-dir"
                )
            run_dir = Path(args.resume)
            problem = rundir.problem(run_dir, resume=True)
            if problem is not None:
                return _fail(problem)
            config = config_lib.load(run_dir / "config.yaml")
        else:
            if not args.config:
                return _fail("give a CONFIG file or --resume RUN_DIR")
            if args.allow_config_change:
                return _fail("--allow-config-change goes with --resume RUN_DIR")
            config = config_lib.load(args.config, args.overrides)
            run_dir = Path(args.run_dir or rundir.default_run_dir(config, Path(args.config).stem))
            problem = rundir.problem(run_dir, resume=False)
            if problem is not None:
                return _fail(problem)
    except config_lib.ConfigError as error:
        return _fail(f"config: {error}")
    from rlx import interrupts

    interrupts.check()  # a signal while the config loaded: stop before anything is built
    return _run(args, config, run_dir)


def _split_cpu(args: argparse.Namespace, members: bool) -> None:
    """Before JAX starts: a members run gets one CPU device per core its members can share
    evenly (``rlx.runtime.cpu_devices_for``), so its learners run side by side."""
    from rlx import members as members_lib
    from rlx import runtime

    count = 0
    if members:
        count = args.seeds
        for text in args.sweep:
            count *= len(members_lib.parse_sweep(text)[1])
    elif args.command == "train" and args.resume and members_lib.is_members_run(Path(args.resume)):
        count = len(members_lib.read_plan(Path(args.resume))[2])
    if count > 1:
        runtime.cpu_devices_for(count)


def _run(args: argparse.Namespace, config, run_dir: Path) -> int:
    from rlx import config as config_lib
    from rlx import driver, members, rundir
    from rlx.checkpoint import CheckpointFormatError, CheckpointMismatchError

    options = {
        "show_progress": not args.no_progress,
        "allow_config_change": args.allow_config_change,
    }
    try:
        if args.command == "train" and args.resume and members.is_members_run(run_dir):
            summary = members.resume(run_dir, **options)
        elif args.command == "train" and (args.seeds != 1 or args.sweep):
            summary = members.train(
                args.config, args.overrides, args.seeds, args.sweep, run_dir, **options
            )
        else:
            run_fn = driver.train
            if args.command == "meta":
                from rlx.meta.run import train as run_fn
            summary = run_fn(config, run_dir, resume=bool(args.resume), **options)
    except config_lib.ConfigError as error:
        return _fail(f"config: {error}")
    except (CheckpointFormatError, rundir.RunDirError) as error:
        return _fail(str(error))
    except CheckpointMismatchError as error:
        other = "train" if args.command == "meta" else "meta"
        return _fail(f"{error}: {run_dir} is not an rlx {args.command} run (rlx {other} --resume?)")
    if summary["status"] == "diverged":
        return _diverged(args.command, run_dir, summary["diverged"])
    _report(summary, run_dir)
    if summary.get("sweep"):
        from rlx.members import settings_markdown

        print(
            f"[rlx] {summary['members']} members; final eval return per setting "
            f"({Path(run_dir) / 'sweep.md'}):",
            flush=True,
        )
        print(settings_markdown(summary["sweep"]), end="", flush=True)
    if summary["status"] == "interrupted":
        print(f"[rlx] resume with: rlx {args.command} --resume {run_dir}", flush=True)
        if summary.get("signal") is not None:
            return 128 + int(summary["signal"])
    return 0


def _report(summary: dict, run_dir: Path) -> None:
    final, primary = summary["final_eval_return"], summary.get("final_eval_primary_return")
    compile_s = summary["compile_s"]
    print(
        f"[rlx] {summary['status']}: {summary['env_steps']:,} env steps in "
        f"{summary['wall_s']:.1f}s (compile {'-' if compile_s is None else f'{compile_s:.1f}'}s), "
        f"final eval return {'-' if final is None else f'{final:.1f}'}"
        f"{'' if primary is None else f' (primary {primary:.1f})'}; results in {run_dir}",
        flush=True,
    )


def _diverged(command: str, run_dir, diverged: dict) -> int:
    """One line on where and why a run diverged and what is left of it; exit status 3."""
    last = diverged["last_checkpoint"]
    kept = (
        f"the last finite checkpoint (chunk {last}) is kept: change the settings that diverged "
        f"in {Path(run_dir) / 'config.yaml'} and go on from it with rlx {command} --resume "
        f"{run_dir} --allow-config-change"
        if last is not None
        else "no finite checkpoint was written before it"
    )
    where = ""
    if diverged.get("members"):
        where = f" in member(s) {', '.join(map(str, diverged['members']))} (members.json)"
    print(
        f"rlx: diverged at chunk {diverged['chunk']} (iteration {diverged['iteration']}){where}: "
        f"non-finite {_first(diverged['quantities'])}; {kept}",
        file=sys.stderr,
        flush=True,
    )
    return 3


def _first(quantities: list[str]) -> str:
    """The first non-finite quantity (the likely cause), and how many others followed."""
    more = len(quantities) - 1
    return quantities[0] + (f" first (and {more} more, in summary.json)" if more else "")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may follow options too (rlx train CONFIG --no-progress train.seed=1).
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        if not args.config:
            args.config, extra = extra[0], extra[1:]
        args.overrides = [*args.overrides, *extra]
    from rlx import interrupts

    # One handler for the whole command: a signal during config, build or compile stops it
    # cleanly too (see rlx.interrupts).
    with interrupts.handling():
        try:
            return train_command(args)
        except interrupts.Interrupted as stopped:
            return interrupts.stopped_before_start(stopped)


def entry() -> None:
    """Console-script entry point."""
    from rlx import interrupts

    interrupts.install_for_process()
    try:
        code = main()
    except interrupts.Interrupted as stopped:  # a second Ctrl-C before main's own handling
        code = interrupts.stopped_before_start(stopped)
    sys.exit(code)
