"""``rlx tune CONFIG [--budget K] [--learn TERM ...] [--compare]``: the config's reward weights
tuned within K times one run's env steps, by the method that budget affords.

The plan (``plan``):

- K < 2: one learner (``meta.method: one_step``) learns the weights while PPO trains, for one
  run's env steps: the method that recovered HalfCheetah's 4x control cost at no extra cost
  (``reward.parameterization: log_scale``, outer step 0.1, cosine decay to 0.1 of it).
- K >= 2: a population of P = floor(K) members in a box (each weight within a factor 100 of
  the start), drawn uniformly at first, exploit/explore every 10 PPO iterations on the
  primary return, resampling in the box during the first 30% of the run only: the method
  that undid walker2d's hacked healthy bonus. Member 0 keeps the start weighting all run
  (``meta.keep_start``): the policy chosen at the end is the start's own run unless a member
  beat it on the primary return, so a good start is not traded for a worse one. Each member
  trains for (at most) one run's env steps, so P members spend at most K runs' env steps
  (``Plan.total_env_steps``).

The weights learned are ``--learn``'s, by default every weight but the env's primary term's
(the anchor: with advantage normalisation only the weights relative to it matter). Each
learned weight keeps its sign (log_scale): a weight of 0 cannot be tuned and is refused.

The run directory is ``rlx meta``'s, plus ``tuned.yaml`` (the config with the chosen
learner's weights, fixed, no meta section: ``rlx train tuned.yaml`` trains it as a plain run),
``tune.json`` (the plan and the outcome), ``report.md`` and ``report.png`` (the weights' paths,
the primary return's curve, the chosen policy's per-term episode sums and episode length, the
env steps spent) and, with ``--compare``, ``compare/``: the start weighting trained as a plain
run for the same env steps per learner.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from rlx import config as config_lib
from rlx import runs
from rlx.core.schema import ConfigError
from rlx.lab.tune_plan import (  # noqa: F401 (the plan's API, re-exported)
    DEFAULT_BUDGET,
    ONE_STEP_SETTINGS,
    POPULATION_SETTINGS,
    Plan,
    plan,
    primary_term,
    tuned_config,
)

TUNE_FILE = "tune.json"  # the plan, then the outcome
START_FILE = "start.yaml"  # the config as given (the start weighting)


def tune(
    config_path: str | Path,
    overrides: list[str],
    run_dir: str | Path,
    budget: float = DEFAULT_BUDGET,
    learn: tuple[str, ...] = (),
    compare: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """``rlx tune``: plans, runs the meta-learner into ``run_dir`` (``rlx meta``'s run
    directory), then writes tuned.yaml, the report and tune.json (and trains the start
    weighting into ``compare/`` with ``compare``). ConfigError (nothing written) for bad
    input; the summary of the meta run, the plan and the outcome otherwise."""
    run_dir = Path(run_dir)
    start = config_lib.load(config_path, overrides)
    the_plan = plan(start, budget, learn)
    config = config_lib.load(config_path, [*overrides, *the_plan.overrides])
    summary = runs.meta(config, run_dir, **options)
    (run_dir / START_FILE).write_text(config_lib.dump(start))
    saved = {"plan": _plan_json(the_plan), "compare": compare, "status": summary["status"]}
    (run_dir / TUNE_FILE).write_text(json.dumps(saved, indent=1) + "\n")
    return _finish(run_dir, the_plan, start, compare, summary, options)


def resume(run_dir: str | Path, **options: Any) -> dict[str, Any]:
    """``rlx tune --resume RUN_DIR``: the meta run from its checkpoint, then what follows it
    (tuned.yaml, the compare run, the report), as ``tune`` would have."""
    run_dir = Path(run_dir)
    try:
        saved = json.loads((run_dir / TUNE_FILE).read_text())
        start = config_lib.load(run_dir / START_FILE)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{run_dir}: not an rlx tune run ({TUNE_FILE} or {START_FILE} unreadable: "
            f"{type(error).__name__})"
        ) from None
    fields = {f.name for f in dataclasses.fields(Plan)}
    the_plan = Plan(
        **{
            k: tuple(v) if isinstance(v, list) else v
            for k, v in saved["plan"].items()
            if k in fields
        }
    )
    config = config_lib.load(run_dir / "config.yaml")
    summary = runs.meta(config, run_dir, resume=True, **options)
    return _finish(run_dir, the_plan, start, saved["compare"], summary, options)


def _finish(run_dir: Path, the_plan: Plan, start, compare: bool, summary: dict, options) -> dict:
    out = {"plan": _plan_json(the_plan), "meta": summary, "status": summary["status"]}
    if summary["status"] != "completed":
        return out
    from rlx.lab import tune_report
    from rlx.ship import policy

    restored = policy.restore(run_dir)  # the chosen learner, restored once for both
    weights, chosen = tune_report.chosen_weights(restored, the_plan.learn)
    (run_dir / "tuned.yaml").write_text(config_lib.dump(tuned_config(start, weights)))
    if compare:
        out["compare"] = _compare(run_dir / "compare", start, the_plan, options)
        if out["compare"]["status"] != "completed":
            return out | {"status": out["compare"]["status"]}
    out |= {"weights": weights, "chosen": None if chosen is None else int(chosen)}
    out["report"] = tune_report.write(run_dir, restored, the_plan, out)
    saved = {"plan": out["plan"], "compare": compare} | {
        k: out[k] for k in ("status", "weights", "chosen", "report")
    }
    (run_dir / TUNE_FILE).write_text(json.dumps(saved, indent=1) + "\n")
    return out


def _compare(path: Path, start, the_plan: Plan, options: dict) -> dict:
    """The start weighting as a plain run for the plan's env steps per learner (resumed where
    an earlier call left it)."""
    done = path / "summary.json"
    if done.exists() and json.loads(done.read_text()).get("status") == "completed":
        return json.loads(done.read_text())
    train = dataclasses.replace(start.train, total_steps=the_plan.env_steps_per_learner)
    config = dataclasses.replace(start, meta=type(start.meta)(), train=train)
    options = {k: v for k, v in options.items() if k not in ("resume", "allow_config_change")}
    return runs.train(config, path, resume=(path / "config.yaml").exists(), **options)


def _plan_json(the_plan: Plan) -> dict:
    return dataclasses.asdict(the_plan) | {"total_env_steps": the_plan.total_env_steps}
