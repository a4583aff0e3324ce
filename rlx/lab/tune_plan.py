"""``rlx tune``'s plan: the method, learners and env-step budget for a config (the runs are
``rlx.tune``'s). See ``rlx.tune`` for what each budget buys."""

from __future__ import annotations

import dataclasses
import json
import math

from rlx import config as config_lib
from rlx.core.schema import ConfigError

DEFAULT_BUDGET = 4.0
# The population's settings (docs/meta.md, "Which method when": walker2d's hacked bonus).
POPULATION_SETTINGS = {
    "meta.method": "population",
    "meta.outer_schedule": "constant",
    "meta.inner_iterations": 10,
    "meta.perturb_scale": 0.2,
    "meta.search_radius": 4.6,  # each weight within a factor e^4.6 = 100 of the start
    "meta.init_distribution": "uniform",
    "meta.resample_probability": 1.0,
    "meta.resample_until": 0.3,
    "meta.fitness_window": 3,
    "meta.member_gradient": "none",
    # The start weighting stays a member all run: the chosen learner is never one the start's
    # own run beat on the primary return (do no harm: walker2d from Brax's weights).
    "meta.keep_start": True,
}
# The one-step meta-gradient's (docs/meta.md: HalfCheetah's 4x control cost).
ONE_STEP_SETTINGS = {
    "meta.method": "one_step",
    "meta.inner_iterations": 1,
    "meta.outer_learning_rate": 0.1,
    "meta.outer_schedule": "cosine",
    "meta.outer_final_fraction": 0.1,
    "meta.grad_steps": 4,
    "meta.bootstrap_steps": 0,
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What ``rlx tune`` runs: its method, learners, learned terms and env-step budget."""

    budget: float  # K: runs' worth of env steps
    method: str  # one_step | population
    members: int  # learners trained (P)
    learn: tuple[str, ...]  # the terms whose weights are tuned
    run_env_steps: int  # one plain run's env steps (the config's, rounded to whole chunks)
    env_steps_per_learner: int
    overrides: tuple[str, ...]  # applied to the config for the meta run

    @property
    def total_env_steps(self) -> int:
        return self.members * self.env_steps_per_learner


def primary_term(config: config_lib.Config) -> str | None:
    """The env's term that is its primary objective (its weight is the anchor), if it names
    one: the config's ``reward.weights`` term the env marks ``primary_term``."""
    from rlx.envs import schema as env_schema

    _, raw = env_schema.resolve(config.env, config.source)
    name = getattr(raw, "primary_term", None)
    return name if name in config.reward.weights else None


def plan(
    config: config_lib.Config, budget: float = DEFAULT_BUDGET, learn: tuple[str, ...] = ()
) -> Plan:
    """The plan for ``config`` within ``budget`` runs' env steps; a ConfigError (one line,
    naming what is wrong) for a budget below one chunk, an unknown or untunable term."""
    if not math.isfinite(budget) or budget < 1:
        raise ConfigError(f"--budget {budget:g}: must be at least 1 (one run's env steps)")
    weights = dict(config.reward.weights)
    if not weights:
        raise ConfigError("reward.weights: no weights to tune (the config weights no terms)")
    learn = tuple(learn) or _default_learn(config, weights)
    for name in learn:
        if name not in weights:
            raise ConfigError(
                f"--learn {name}: no such weight in reward.weights (there are: "
                f"{', '.join(weights)})"
            )
        if weights[name] == 0:
            raise ConfigError(
                f"--learn {name}: its weight is 0, which tuning cannot move (each weight keeps "
                "its sign, a factor at a time): start it at a small value with the sign it "
                f"should have, e.g. reward.weights.{name}=0.01"
            )
    batch = config.train.num_envs * config.train.unroll_length
    run_steps = config.iterations * batch
    if budget < 2:
        members, settings, inner = 1, ONE_STEP_SETTINGS, 1
    else:
        members, settings, inner = int(budget), POPULATION_SETTINGS, 10
    iterations = config.iterations // inner * inner  # whole meta-iterations, never more
    if iterations == 0:
        raise ConfigError(
            f"train.total_steps: {config.train.total_steps} is below one meta-iteration of "
            f"{inner} PPO iterations ({inner * batch} env steps) for this budget"
        )
    overrides = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
    overrides += [
        f"meta.learn={json.dumps([f'combine/{name}' for name in learn])}",
        "reward.parameterization=log_scale",
        f"train.total_steps={iterations * batch}",
    ]
    if members > 1:
        overrides += [
            f"meta.population_size={members}",
            f"meta.exploit_fraction={max(0.25, 1.0 / members)}",
            "run.chunk_iterations=1",
        ]
    method = settings["meta.method"]
    return Plan(budget, method, members, learn, run_steps, iterations * batch, tuple(overrides))


def _default_learn(config: config_lib.Config, weights: dict) -> tuple[str, ...]:
    anchor = primary_term(config)
    if anchor is None:
        raise ConfigError(
            f"{config.env.name} names no primary term to hold fixed: say which weights to tune "
            f"with --learn (the weights are: {', '.join(weights)})"
        )
    learn = tuple(name for name in weights if name != anchor)
    if not learn:
        raise ConfigError(f"reward.weights: only the primary's ({anchor}) is weighted")
    return learn


def tuned_config(start: config_lib.Config, weights: dict[str, float]) -> config_lib.Config:
    """``start`` with ``weights`` fixed and no meta section (a plain ``rlx train`` config)."""
    reward = dataclasses.replace(start.reward, weights={**start.reward.weights, **weights})
    return dataclasses.replace(start, reward=reward, meta=type(start.meta)())
