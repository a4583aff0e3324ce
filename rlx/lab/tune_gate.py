"""The equal-compute protocol that holds ``rlx tune`` to what a user could do instead.

Per case (a config, an expert weighting, a misspecified start, the terms tuned, a budget K):

- **A**: the expert weighting, one run per seed;
- **B**: the start weighting, one run per seed;
- **S**: a sweep of K weightings drawn log-uniformly in the box the tuner searches (each
  learned weight times e^U(-R, R), R = ``rlx.tune``'s search radius, drawn per seed), each
  trained for one run's env steps; the member with the best *training* primary return over
  the last 10% of its run is picked, and its final eval primary return reported;
- **T**: ``rlx tune --budget K`` from B's weights (its chosen policy's final eval primary
  return); **T1**: the same with ``--budget 1``.

Each arm is one program, its seeds (and an S arm's K members per seed) vmapped: a members run
directory (``rlx.run.members_dir``), so an arm that is stopped resumes where it stopped.
Every arm records its learners, env steps per learner and total env steps per seed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.core import sharding
from rlx.core.stacking import init_each
from rlx.core.stats import bootstrap_ci
from rlx.lab import tune_plan
from rlx.run import driver, members, rundir
from rlx.run.members_dir import MembersRun
from rlx.run.sweep import Member

SEARCH_RADIUS = tune_plan.POPULATION_SETTINGS["meta.search_radius"]
PICK_FRACTION = 0.1  # S picks by the training primary return over this last part of the run


@dataclasses.dataclass(frozen=True)
class Case:
    """A tuning case: its config, the expert's and the start's weights, the tuned terms."""

    config: str
    expert: dict[str, float]
    start: dict[str, float]
    learn: tuple[str, ...]
    budget: int


def _with_weights(path: str, weights: dict, overrides: list[str]) -> config_lib.Config:
    """The case's config with exactly ``weights`` and no meta section."""
    data = [f"reward.weights={json.dumps(weights)}", "meta={}"]
    return config_lib.load(path, [*data, *overrides])


def plain_arm(configs: list[tuple[config_lib.Config, int]], arm_dir: Path, **options) -> list:
    """Plain PPO learners (each its config and seed) vmapped in one members run; each one's
    summary (``final_eval_primary_return``, its rows in ``members/<i>/metrics.jsonl``)."""
    width = len(str(len(configs) - 1))
    plan = [Member(i, seed, (("arm", str(i)),), f"members/{i:0{width}d}") for i, (_, seed) in
            enumerate(configs)]  # fmt: skip
    builts = [build_lib.build(dataclasses.replace(c, train=dataclasses.replace(c.train, seed=s)))
              for c, s in configs]  # fmt: skip
    program = members.program(builts, plan, builts[0].config)
    resume = (arm_dir / "members.json").exists()
    summary = driver.run(program, arm_dir, driver.RunOptions(resume=resume, **options))
    return (
        [json.loads((arm_dir / m.directory / "summary.json").read_text()) for m in plan]
        if (summary["status"] == "completed")
        else None
    )


def meta_arm(config: config_lib.Config, seeds: list[int], arm_dir: Path, **options):
    """``config``'s meta-learner (a tune plan's) for each seed, vmapped in one run; each
    seed's summary, or None while it is not done."""
    built = build_lib.build(config, meta=True)
    meta, hps = built.meta, built.meta_hps
    keys = jax.numpy.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])
    keys = jax.random.wrap_key_data(keys)
    plan = [Member(i, s, (("seed", str(s)),), f"members/{i}") for i, s in enumerate(seeds)]
    seeded = [dataclasses.replace(config, train=dataclasses.replace(config.train, seed=s))
              for s in seeds]  # fmt: skip
    program = driver.Program(
        init=lambda _key: init_each(lambda k: meta.init(k, hps), keys),
        chunk=lambda s, h, num_iterations: jax.vmap(lambda x: meta.chunk(x, h, num_iterations))(s),
        evaluate=lambda s, h, key: jax.vmap(lambda x: meta.evaluate(x, h, key))(s),
        hparams=hps,
        iterations=config.meta_iterations,
        steps_per_iteration=meta.agent.static.batch_size * config.meta.ppo_iterations,
        shardings=lambda state, mesh: jax.tree.map(lambda _: sharding.replicated(mesh), state),
        config=config,
        open_files=lambda path, resume, allow: MembersRun(
            config, tuple(plan), tuple(seeded), path, resume, allow
        ),
        learner=driver.single_learner,
        agent=meta.agent,
        devices_problem=lambda devices: None if devices == 1 else "run the gate on one device",
        stacked=len(seeds),
    )
    resume = (arm_dir / "members.json").exists()
    summary = driver.run(program, arm_dir, driver.RunOptions(resume=resume, **options))
    if summary["status"] != "completed":
        return None
    return [
        json.loads((arm_dir / m.directory / "summary.json").read_text())
        | {"rows": rundir.read_rows(arm_dir / m.directory / "metrics.jsonl")}
        for m in plan
    ]


def sweep_draws(case: Case, seed: int) -> list[dict[str, float]]:
    """The K weightings an S arm trains for ``seed``: each learned weight times
    e^U(-R, R), the others as the start's (``np.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(case.budget):
        draw = dict(case.start)
        for name in case.learn:
            draw[name] = float(
                case.start[name] * np.exp(rng.uniform(-SEARCH_RADIUS, SEARCH_RADIUS))
            )
        out.append(draw)
    return out


def picked_by_training(rows: list[dict]) -> float:
    """A learner's mean training primary return over the last ``PICK_FRACTION`` of its run."""
    last = rows[-1]["env_steps"]
    values = [
        r["train/primary_return"]
        for r in rows
        if r["env_steps"] >= (1 - PICK_FRACTION) * last
        and r.get("train/primary_return") is not None
    ]
    return float(np.mean(values)) if values else -np.inf


def final_eval(rows: list[dict], suffix: str = "") -> dict[str, Any]:
    """The last evaluation in ``rows``: its primary return, episode length and term sums
    (``suffix`` ``_best_member`` reads a population's best member), so a hacked or
    limp-fall optimum shows."""
    last = [r for r in rows if r.get(f"eval/primary_return{suffix}") is not None][-1]
    terms = {
        k[len("eval/terms/") : len(k) - len(suffix)]: float(v)
        for k, v in last.items()
        if k.startswith("eval/terms/") and k.endswith(suffix)
        and (suffix or not k.endswith("_best_member"))
    }  # fmt: skip
    return {
        "primary": float(last[f"eval/primary_return{suffix}"]),
        "length": float(last[f"eval/length{suffix}"]),
        "terms": terms,
    }


def summarize(
    per_seed: list[float], learners: int, steps_per_learner: int, finals: list[dict] = ()
) -> dict[str, Any]:
    """An arm's figures: mean, 95% bootstrap CI over seeds, each seed's, the env steps, and
    (``finals``, from ``final_eval``) each seed's final episode length and term sums."""
    detail = (
        {"per_seed_length": [f["length"] for f in finals],
         "per_seed_terms": [f["terms"] for f in finals]}
        if finals else {}
    )  # fmt: skip
    return detail | {
        "mean": float(np.mean(per_seed)),
        "ci": bootstrap_ci(per_seed),
        "per_seed": [float(v) for v in per_seed],
        "learners_per_seed": learners,
        "steps_per_learner": steps_per_learner,
        "total_env_steps": learners * steps_per_learner,
    }


def run_case(case: Case, seeds: list[int], root: Path, arms: tuple[str, ...], overrides: list[str],
             on_arm=None, known: dict | None = None, **options) -> dict[str, Any]:  # fmt: skip
    """Every arm of ``arms`` for ``case`` on ``seeds`` into ``root/<arm>``, in order; the
    figures of those that are done, each also handed to ``on_arm(arm, figures)`` as soon as
    it is (so a long case keeps what it finished). ``known``: figures of arms measured before
    (same case, seeds and overrides), kept and not run again (a tune arm only under the same
    plan: ``still_current``). An arm that stops part-way (a
    signal, a stall, a divergence) ends the case there, left to resume: a SIGTERM stops the
    gate, not one arm."""
    base = _with_weights(case.config, case.start, overrides)
    run_steps = base.iterations * base.train.num_envs * base.train.unroll_length
    plans = tune_plans(case, base, arms)
    out = still_current(known or {}, plans)
    for arm in arms:
        if arm in out:
            continue
        started = time.monotonic()
        if arm == "B" and case.start == case.expert and "A" in out:
            # the same program: do no harm's A = B (A's figures, not the command that ran it)
            result = {k: v for k, v in out["A"].items() if k != "command"} | {"same_as": "A"}
        elif arm in ("A", "B"):
            weights = case.expert if arm == "A" else case.start
            config = _with_weights(case.config, weights, overrides)
            done = plain_arm([(config, s) for s in seeds], root / arm, **options)
            if done is None:
                break
            finals = [final_eval(_rows(root / arm, i, len(seeds))) for i in range(len(seeds))]
            result = summarize([f["primary"] for f in finals], 1, run_steps, finals)
        elif arm == "S":
            configs = [
                (_with_weights(case.config, w, overrides), s)
                for s in seeds
                for w in sweep_draws(case, s)
            ]
            done = plain_arm(configs, root / arm, **options)
            if done is None:
                break
            result = _sweep_result(case, seeds, root / arm, run_steps)
        else:
            plan = plans[arm]
            config = config_lib.load(case.config, [f"reward.weights={json.dumps(case.start)}",
                                                    *overrides, *plan.overrides])  # fmt: skip
            _set_aside_if_changed(root / arm, config)
            done = meta_arm(config, seeds, root / arm, **options)
            if done is None:
                break
            suffix = "_best_member" if plan.members > 1 else ""
            finals = [final_eval(d["rows"], suffix) for d in done]
            result = summarize(
                [f["primary"] for f in finals], plan.members, plan.env_steps_per_learner, finals
            ) | {"method": plan.method, "plan": list(plan.overrides)}
        out[arm] = result | {"wall_s_last_call": round(time.monotonic() - started, 1)}
        if on_arm is not None:
            on_arm(arm, out[arm])
    return out


def tune_plans(case: Case, base: config_lib.Config, arms=("T", "T1")) -> dict:
    """The plans of those of ``arms`` that tune: T (``--budget K``), T1 (``--budget 1``)."""
    budgets = {"T": case.budget, "T1": 1}
    return {arm: tune_plan.plan(base, budgets[arm], case.learn) for arm in arms if arm in budgets}


def still_current(known: dict, plans: dict[str, tune_plan.Plan]) -> dict:
    """The arms of ``known`` to keep: all but a tune arm measured under another plan than
    ``plans``' (``rlx tune``'s settings changed since; it runs again)."""
    return {
        arm: result
        for arm, result in known.items()
        if arm not in plans or result.get("plan") == list(plans[arm].overrides)
    }


def _set_aside_if_changed(arm_dir: Path, config: config_lib.Config) -> None:
    """An arm directory left by another config (an older plan) renamed ``<arm>.old<n>``, so
    the arm starts afresh instead of failing to resume; the same config's is left to resume."""
    saved = arm_dir / "config.yaml"
    if not saved.exists() or config_lib.dump(config_lib.load(saved)) == config_lib.dump(config):
        return
    n = 1
    while arm_dir.with_name(f"{arm_dir.name}.old{n}").exists():
        n += 1
    arm_dir.rename(arm_dir.with_name(f"{arm_dir.name}.old{n}"))


def _rows(arm_dir: Path, index: int, count: int) -> list[dict]:
    """Learner ``index``'s metric rows in a plain arm of ``count`` learners."""
    width = len(str(count - 1))
    return rundir.read_rows(arm_dir / f"members/{index:0{width}d}/metrics.jsonl")


def _sweep_result(case: Case, seeds, arm_dir: Path, run_steps: int) -> dict:
    finals, picked = [], []
    count = len(seeds) * case.budget
    for i, _seed in enumerate(seeds):
        idx = range(i * case.budget, (i + 1) * case.budget)
        scores = [picked_by_training(_rows(arm_dir, j, count)) for j in idx]
        best = idx[int(np.argmax(scores))]
        picked.append(best - i * case.budget)
        finals.append(final_eval(_rows(arm_dir, best, count)))
    result = summarize([f["primary"] for f in finals], case.budget, run_steps, finals)
    return result | {"picked_member": picked}
