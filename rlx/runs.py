"""rlx's runs from Python: what ``rlx train`` and ``rlx meta`` do, one function each.

Each builds its program (``rlx.run.driver.Program``: what to run and the files it writes),
attaches the training videos its config asks for, and hands it to the driver once::

    from rlx import config as config_lib, runs

    config = config_lib.load("configs/cartpole.yaml", ["train.total_steps=65536"])
    summary = runs.train(config, "runs/cartpole-py", show_progress=False)

The keyword options are ``rlx.run.driver.RunOptions``'s: ``resume``, ``show_progress``,
``max_chunks``, ``allow_config_change``. Each returns the run's summary (also written to
``summary.json``); input the run refuses raises ``ConfigError`` or ``RunDirError`` before
anything is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.run import driver, members, meta_run, sweep
from rlx.run.members_dir import DetachedMemberRun


def with_videos(program: driver.Program) -> driver.Program:
    """``program`` recording ``eval.video_every_chunks``' videos of its learner (a
    population's best member); as it is when the config asks for none. A ConfigError naming
    the key when the env cannot be rendered."""
    config = program.config
    if not config.eval.video_every_chunks:
        return program
    from rlx.ship import render

    policy_of = lambda state, hparams: program.learner(state, hparams, None)[:2]
    try:
        hook = render.video_hook(program.agent, config, policy_of)
    except render.RenderError as error:
        raise config.source.error("eval.video_every_chunks", str(error)) from None
    return dataclasses.replace(program, video=hook)


def train(config: config_lib.Config, run_dir: str | Path, **options: Any) -> dict[str, Any]:
    """``rlx train``: PPO per ``config`` into ``run_dir``. Resuming a member of a members run
    (``RUN_DIR/members/<i>``) continues it alone from the members run's checkpoint."""
    program = with_videos(driver.ppo_program(build_lib.build(config)))
    if options.get("resume") and sweep.member_index(Path(run_dir)) is not None:
        program = dataclasses.replace(
            program,
            open_files=lambda path, resume, allow: DetachedMemberRun(
                config, "train", path, resume, allow
            ),
        )
    return driver.run(program, run_dir, driver.RunOptions(**options))


def meta(config: config_lib.Config, run_dir: str | Path, **options: Any) -> dict[str, Any]:
    """``rlx meta``: the config's meta-learner into ``run_dir``, then ``phi.png``."""
    program = with_videos(meta_run.meta_program(build_lib.build(config, meta=True)))
    summary = driver.run(program, run_dir, driver.RunOptions(**options))
    path = meta_run.plot(run_dir)
    if path is not None and options.get("show_progress", True):
        print(f"[rlx] phi plot: {path}", flush=True)
    return summary


def train_members(
    config_path: str | Path,
    overrides: list[str],
    seeds: int,
    sweeps: list[str],
    run_dir: str | Path,
    **options: Any,
) -> dict[str, Any]:
    """``rlx train CONFIG --seeds N --sweep KEY=V1,V2 ...`` into ``run_dir``
    (``rlx.run.sweep``). ConfigError (nothing written) for a bad sweep, a static key or a
    config a member refuses."""
    base = config_lib.load(config_path, overrides)
    plan = sweep.plan(base.train.seed, seeds, [sweep.parse_sweep(t) for t in sweeps])
    built_base, builts = sweep.build_members(base, plan, overrides, config_path)
    program = members.program(builts, plan, built_base.config)
    return driver.run(program, run_dir, driver.RunOptions(**options))


def resume_members(run_dir: str | Path, **options: Any) -> dict[str, Any]:
    """``rlx train --resume RUN_DIR`` of a members run: every member from the newest chunk they
    all have a checkpoint of."""
    run_dir = Path(run_dir)
    _, _, plan = sweep.read_plan(run_dir)
    base = config_lib.load(run_dir / "config.yaml")
    built_base, builts = sweep.build_members(base, plan, [], run_dir / "config.yaml")
    program = members.program(builts, plan, built_base.config)
    return driver.run(program, run_dir, driver.RunOptions(resume=True, **options))
