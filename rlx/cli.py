"""The CLI: ``rlx train|meta|tune CONFIG [dotted.key=value ...]``, ``rlx train|meta|tune --resume
RUN_DIR``, ``rlx eval|export|render RUN_DIR``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _add_run_arguments(sub: argparse.ArgumentParser, name: str) -> None:
    """The arguments of ``rlx train``, ``rlx meta`` and ``rlx tune``."""
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
    several = sub.add_argument_group(
        "several processes (jax.distributed; or from JAX_COORDINATOR_ADDRESS, SLURM, TPU pods)"
    )
    several.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    several.add_argument("--num-processes", type=int, metavar="N")
    several.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1")
    if name == "tune":
        sub.add_argument(
            "--budget",
            type=float,
            default=None,
            metavar="K",
            help="env steps: K times one run's (default 4; 1: one learner, no extra steps)",
        )
        sub.add_argument(
            "--learn",
            nargs="+",
            default=[],
            metavar="TERM",
            help="the weights to tune (default: every weight but the env's primary term's)",
        )
        sub.add_argument(
            "--compare",
            action="store_true",
            help="also train the start weighting for the same env steps per learner",
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlx", description="JAX-native RL for robot control")
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "train": "train PPO on a config",
        "meta": "meta-learn the reward params (the config's meta section) around PPO",
        "tune": "tune the config's reward weights within a budget of K runs' env steps",
    }
    for name, text in helps.items():
        _add_run_arguments(commands.add_parser(name, help=text), name)
    sub = commands.add_parser("eval", help="evaluate a run's policy from its checkpoint")
    sub.add_argument("run_dir", metavar="RUN_DIR")
    sub.add_argument("--checkpoint", type=int, metavar="N", help="chunk N (default: newest)")
    sub.add_argument("--episodes", type=int, metavar="K", help="default eval.num_envs")
    sub.add_argument("--seed", type=int, metavar="S", help="eval key (default eval.seed)")
    sub.add_argument(
        "--stochastic",
        action=argparse.BooleanOptionalAction,
        help="sample actions; --no-stochastic: the mode (default: the run's eval.deterministic)",
    )
    sub.add_argument("--member", type=int, metavar="I", help="population member (default: best)")
    sub.add_argument("--out", metavar="FILE", help="default RUN_DIR/eval.json")
    sub = commands.add_parser("export", help="write a run's policy as ONNX or jax.export")
    sub.add_argument("run_dir", metavar="RUN_DIR")
    sub.add_argument("--format", choices=("onnx", "jax"), default="onnx")
    sub.add_argument("--out", metavar="DIR", help="default RUN_DIR/export")
    sub.add_argument("--checkpoint", type=int, metavar="N", help="chunk N (default: newest)")
    sub.add_argument("--member", type=int, metavar="I", help="population member (default: best)")
    sub = commands.add_parser("render", help="a video of a run's policy (MuJoCo-based envs)")
    sub.add_argument("run_dir", metavar="RUN_DIR")
    sub.add_argument("--out", metavar="FILE", help="default RUN_DIR/video.mp4")
    sub.add_argument("--episodes", type=int, default=1, metavar="K")
    sub.add_argument(
        "--camera", metavar="NAME", help="a camera of the model (default: the env's own, view)"
    )
    sub.add_argument("--width", type=int, default=480)
    sub.add_argument("--height", type=int, default=360)
    sub.add_argument("--fps", type=float, help="default: real time (10-60)")
    sub.add_argument("--seed", type=int, metavar="S", help="eval key (default eval.seed)")
    sub.add_argument("--checkpoint", type=int, metavar="N", help="chunk N (default: newest)")
    sub.add_argument("--member", type=int, metavar="I", help="population member (default: best)")
    return parser


def render_command(args: argparse.Namespace) -> int:
    """``rlx render``: an mp4 of the policy's episodes with a strip of its terms; exit 2 with
    one line for bad input (not a run, an env without a renderer, unknown camera, --out)."""
    from rlx.ship import render

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "video.mp4"
    if not (run_dir / "config.yaml").is_file():
        return _fail(f"{run_dir}: not a run directory (no config.yaml)")
    if args.episodes < 1:
        return _fail(f"--episodes {args.episodes}: must be at least 1")
    if out.is_dir() or not out.parent.is_dir():
        return _fail(f"--out {out}: not a file in an existing directory")
    try:
        render.choose_gl()  # before mujoco is first imported
        from rlx.ship import policy

        restored = policy.restore(run_dir, args.checkpoint, args.member)
        written = render.render(
            restored, out, args.episodes, args.camera, args.width, args.height, args.fps, args.seed
        )
    except (render.RenderError, ValueError) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"--out {out}: cannot write there ({error.strerror or error})")
    print(
        f"[rlx] {out}: {written['episodes']} episode(s), {sum(written['frames_per_episode'])} "
        f"frames of {written['width']}x{written['height']} at {written['fps']:g} fps "
        f"(chunk {restored.chunk}, MUJOCO_GL={os.environ.get('MUJOCO_GL')})",
        flush=True,
    )
    return 0


def export_command(args: argparse.Namespace) -> int:
    """``rlx export``: the policy file and its spec; exit 2 with one line for bad input."""
    from rlx.ship import export, policy

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "export"
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return _fail(f"--out {out}: {existing} is not a directory")
    try:
        spec = export.export(run_dir, args.format, out, args.checkpoint, args.member)
    except (policy.PolicyError, export.ExportError) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"--out {out}: cannot write there ({error.strerror})")
    check = spec.get("check")
    extra = (
        f"; max abs diff from the JAX policy on {check['observations']} random observations: "
        f"{check['max_abs_diff']:.2e}"
        if check
        else ""
    )
    print(f"[rlx] {out / spec['file']} and {out / spec['spec']} (chunk {spec['chunk']}){extra}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """``rlx eval``: the run's policy for K episodes; a table and eval.json. Exit 2 with one
    line for a bad run directory, checkpoint, member or --out, before anything is written."""
    from rlx.ship import policy

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "eval.json"
    if not (run_dir / "config.yaml").is_file():
        return _fail(f"{run_dir}: not a run directory (no config.yaml)")
    if args.episodes is not None and args.episodes < 1:
        return _fail(f"--episodes {args.episodes}: must be at least 1")
    if out.is_dir() or not out.parent.is_dir():
        return _fail(f"--out {out}: not a file in an existing directory")
    try:
        out.parent.joinpath(".rlx-eval-probe").touch()
        out.parent.joinpath(".rlx-eval-probe").unlink()
    except OSError as error:
        return _fail(f"--out {out}: cannot write there ({error.strerror})")
    try:
        restored = policy.restore(run_dir, args.checkpoint, args.member)
    except policy.PolicyError as error:
        return _fail(str(error))
    config = restored.config
    stochastic = not config.eval.deterministic if args.stochastic is None else args.stochastic
    results = policy.evaluate(restored, args.episodes, args.seed, stochastic)
    settings = {
        "run_dir": run_dir,
        "episodes_run": args.episodes or config.eval.num_envs,
        "seed": config.eval.seed if args.seed is None else args.seed,
        "stochastic": stochastic,
    }
    policy.write(out, restored, results, settings)
    who = f", member {restored.member}" if restored.member is not None else ""
    print(
        f"[rlx] eval of {run_dir} at chunk {restored.chunk}{who}: {settings['episodes_run']} "
        f"episodes, seed {settings['seed']}, {'sampled' if stochastic else 'mode'} actions",
        flush=True,
    )
    print("| quantity | mean | std | min | max |\n|---|---|---|---|---|", flush=True)
    for name, v in results.items():
        print(f"| {name} | {v['mean']:.3f} | {v['std']:.3f} | {v['min']:.3f} | {v['max']:.3f} |")
    print(f"[rlx] written to {out}", flush=True)
    return 0


def _fail(message: str) -> int:
    print(f"rlx: error: {message}", file=sys.stderr)
    return 2


def train_command(args: argparse.Namespace) -> int:
    """``rlx train`` and ``rlx meta``: every check of the input and the run directory first,
    then the run; a one-line error (exit 2) for anything refused, nothing written."""
    from rlx import config as config_lib
    from rlx.run import rundir

    members = getattr(args, "seeds", 1) != 1 or bool(getattr(args, "sweep", []))
    if getattr(args, "seeds", 1) < 1:
        return _fail(f"--seeds {args.seeds}: must be at least 1")
    try:
        _split_cpu(args, members)
    except config_lib.ConfigError as error:
        return _fail(str(error))
    from rlx.core import runtime

    runtime.configure()  # before anything starts JAX's CPU backend (the config's checks do)

    try:
        processes = runtime.distributed(args.coordinator, args.num_processes, args.process_id)
    except runtime.DistributedError as error:
        return _fail(str(error))
    if processes > 1 and not (args.resume or args.run_dir):
        return _fail(f"a run of {processes} processes needs --run-dir (the same in every process)")
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
            problem = rundir.problem_everywhere(run_dir, resume=False)
            if problem is not None:
                return _fail(problem)
    except config_lib.ConfigError as error:
        return _fail(f"config: {error}")
    if config.eval.video_every_chunks:
        from rlx.ship import render

        try:
            render.choose_gl()  # before mujoco is first imported
        except render.RenderError as error:
            return _fail(f"eval.video_every_chunks: {error}")
    from rlx.core import interrupts

    interrupts.check()  # a signal while the config loaded: stop before anything is built
    if processes == 1:
        return _run(args, config, run_dir)
    return _run_one_of_several(args, config, run_dir)


def _run_one_of_several(args: argparse.Namespace, config, run_dir: Path) -> int:
    """``_run`` in one process of several. A process that fails alone (a file only process 0
    writes, say) exits at once, past JAX's shutdown barrier, where the others would wait for it:
    they notice the missing heartbeat and exit non-zero too, instead of waiting forever."""
    import traceback

    try:
        code = _run(args, config, run_dir)
    except BaseException:  # noqa: BLE001 (anything, even a second Ctrl-C)
        traceback.print_exc()
        code = 1
    if code != 0:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _split_cpu(args: argparse.Namespace, members: bool) -> None:
    """Before JAX starts: a members run gets one CPU device per core its members can share
    evenly (``rlx.core.runtime.cpu_devices_for``), so its learners run side by side."""
    from rlx.core import runtime
    from rlx.run import sweep

    count = 0
    if members:
        count = args.seeds
        for text in args.sweep:
            count *= len(sweep.parse_sweep(text)[1])
    elif args.command == "train" and args.resume and sweep.is_members_run(Path(args.resume)):
        count = len(sweep.read_plan(Path(args.resume))[2])
    if count > 1 and not _on_the_c_engine(args):
        runtime.cpu_devices_for(count)


def _on_the_c_engine(args: argparse.Namespace) -> bool:
    """Whether the run's env steps MuJoCo's C engine (``env.params.impl: c``, in the file or
    an override): its members stay on one CPU device, since the engine threads over the cores
    itself, and XLA's collectives around its host callbacks stalled when split (all-gather
    rendezvous waiting for ever)."""
    import yaml

    path = Path(args.resume) / "config.yaml" if getattr(args, "resume", None) else args.config
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError, TypeError):
        return False  # the config's own checks say what is wrong with it
    env = data.get("env") if isinstance(data, dict) else None
    params = env.get("params") if isinstance(env, dict) else None
    impl = params.get("impl") if isinstance(params, dict) else None
    for override in getattr(args, "overrides", None) or ():
        key, _, text = override.partition("=")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        for path in ("env.params.impl", "env.params", "env"):
            if key == path:  # the override's value, down to impl
                for part in ["env", "params", "impl"][len(path.split(".")) :]:
                    value = value.get(part) if isinstance(value, dict) else None
                impl = value if key == "env.params.impl" or value is not None else impl
    return impl == "c"


def _run(args: argparse.Namespace, config, run_dir: Path) -> int:
    from rlx import config as config_lib
    from rlx import runs
    from rlx.run import rundir, sweep, sweep_table
    from rlx.run.checkpoint import CheckpointFormatError, CheckpointMismatchError

    options = {
        "show_progress": not args.no_progress,
        "allow_config_change": args.allow_config_change,
    }
    try:
        if args.command == "train" and args.resume and sweep.is_members_run(run_dir):
            summary = runs.resume_members(run_dir, **options)
        elif args.command == "train" and (args.seeds != 1 or args.sweep):
            summary = runs.train_members(
                args.config, args.overrides, args.seeds, args.sweep, run_dir, **options
            )
        elif args.command == "tune":
            return _tune(args, run_dir, options)
        else:
            run_fn = runs.meta if args.command == "meta" else runs.train
            summary = run_fn(config, run_dir, resume=bool(args.resume), **options)
    except config_lib.ConfigError as error:
        return _fail(f"config: {error}")
    except (CheckpointFormatError, rundir.RunDirError, sweep.PlanError) as error:
        return _fail(str(error))
    except CheckpointMismatchError as error:
        other = "train" if args.command == "meta" else "meta"
        return _fail(f"{error}: {run_dir} is not an rlx {args.command} run (rlx {other} --resume?)")
    if summary["status"] == "diverged":
        return _diverged(args.command, run_dir, summary["diverged"])
    if summary.get("sweep"):  # several weightings: their mean return compares nothing
        table = summary["sweep"]
        print(
            f"[rlx] {summary['members']} members; per setting ({Path(run_dir) / 'sweep.md'}):",
            flush=True,
        )
        print(sweep_table.settings_markdown(table), end="", flush=True)
        _say(
            f"[rlx] {summary['status']}: {summary['env_steps']:,} env steps per member in "
            f"{summary['wall_s']:.1f}s; {sweep_table.best_line(table)}; results in {run_dir}"
        )
    else:
        _report(summary, run_dir)
    if summary["status"] == "interrupted":
        print(f"[rlx] resume with: rlx {args.command} --resume {run_dir}", flush=True)
        if summary.get("signal") is not None:
            return 128 + int(summary["signal"])
    return 0


def _tune(args: argparse.Namespace, run_dir: Path, options: dict) -> int:
    """``rlx tune``: the tuning run, then one line per outcome (the report's place)."""
    from rlx import tune

    if args.resume:
        out = tune.resume(run_dir, **options)
    else:
        budget = tune.DEFAULT_BUDGET if args.budget is None else args.budget
        out = tune.tune(
            args.config,
            args.overrides,
            run_dir,
            budget,
            tuple(args.learn),
            args.compare,
            **options,
        )
    summary = out["meta"]
    if summary["status"] == "diverged":
        return _diverged("tune", run_dir, summary["diverged"])
    plan = out["plan"]
    if out["status"] != "completed":
        print(f"[rlx] resume with: rlx tune --resume {run_dir}", flush=True)
        signal = summary.get("signal") or out.get("compare", {}).get("signal")
        return 128 + int(signal) if signal is not None else 0
    weights = ", ".join(f"{k}={v:.4g}" for k, v in out["weights"].items())
    report = out["report"]
    compare = report.get("compare_primary_return")
    _say(
        f"[rlx] tuned ({plan['method']}, {plan['members']} learner(s), "
        f"{plan['total_env_steps']:,} env steps in all): {weights}; the chosen policy's eval "
        f"primary return {report['primary_return']:.2f}"
        + ("" if compare is None else f" (the start weighting's: {compare:.2f})")
        + f"; {Path(run_dir) / 'tuned.yaml'} and report.md"
    )
    return 0


def _report(summary: dict, run_dir: Path) -> None:
    final, primary = summary["final_eval_return"], summary.get("final_eval_primary_return")
    compile_s = summary["compile_s"]
    _say(
        f"[rlx] {summary['status']}: {summary['env_steps']:,} env steps in "
        f"{summary['wall_s']:.1f}s (compile {'-' if compile_s is None else f'{compile_s:.1f}'}s), "
        f"final eval return {'-' if final is None else f'{final:.1f}'}"
        f"{'' if primary is None else f' (primary {primary:.1f})'}; results in {run_dir}"
    )


def _say(text: str) -> None:
    """``text`` wrapped at the terminal's width (``COLUMNS``, else 80), never inside a word or a
    path: a closing line stays readable in an 80-column terminal or a log."""
    import shutil
    import textwrap

    width = shutil.get_terminal_size((80, 24)).columns
    lines = textwrap.wrap(text, width=max(width, 40), subsequent_indent="      ",
                          break_long_words=False, break_on_hyphens=False)  # fmt: skip
    print("\n".join(lines), flush=True)


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
    if args.command in ("eval", "export", "render"):
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        command = {"eval": eval_command, "export": export_command, "render": render_command}
        return command[args.command](args)
    unknown = [a for a in extra if a.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        if not args.config:
            args.config, extra = extra[0], extra[1:]
        args.overrides = [*args.overrides, *extra]
    if getattr(args, "learn", None):  # --learn TERM ... may have taken overrides after it
        args.overrides = [*args.overrides, *[x for x in args.learn if "=" in x]]
        args.learn = [x for x in args.learn if "=" not in x]
    from rlx.core import interrupts

    # One handler for the whole command: a signal during config, build or compile stops it
    # cleanly too (see rlx.core.interrupts).
    with interrupts.handling():
        try:
            return train_command(args)
        except interrupts.Interrupted as stopped:
            return interrupts.stopped_before_start(stopped)


def entry() -> None:
    """Console-script entry point."""
    from rlx.core import interrupts

    interrupts.install_for_process()
    try:
        code = main()
    except interrupts.Interrupted as stopped:  # a second Ctrl-C before main's own handling
        code = interrupts.stopped_before_start(stopped)
    sys.exit(code)
