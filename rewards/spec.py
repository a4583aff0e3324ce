"""A reward spec (the ``reward`` section of a config, resolved) -> (RewardFn, initial params).

The spec says which terms, combination, term transforms and shaping stages exist (static); the
returned params pytree holds every number in it (weights, exponents, thresholds, temperatures,
potential coefficients, sigmoid steepness, references, clip bounds) as traced leaves, so a
compiled train step serves any values of them. ``rlx.rewards.schema`` holds the section's
schema (its option lists are the registries here) and validates it against the env first.
"""

from __future__ import annotations

import numpy as np

from rlx.core.types import observation_size
from rlx.rewards import code as code_lib
from rlx.rewards import combine as combinations
from rlx.rewards import constraints as constraints_lib
from rlx.rewards import dynamic as dynamic_lib
from rlx.rewards import schedule as schedules
from rlx.rewards import shaping as shaping_lib
from rlx.rewards import weights as parameterizations
from rlx.rewards.base import RewardFn, chain


def _free(spec, names, obs_size):
    return parameterizations.free()


def _signs(spec) -> dict[str, float]:
    return {name: float(np.sign(value)) or 1.0 for name, value in spec.weights.items()}


def _fixed_sign(spec, names, obs_size):
    return parameterizations.fixed_sign(_signs(spec))


def _log_scale(spec, names, obs_size):
    return parameterizations.log_scale(_signs(spec))


def _simplex(spec, names, obs_size):
    return parameterizations.simplex(_signs(spec), sum(abs(v) for v in spec.weights.values()))


def _linear_head(spec, names, obs_size):
    features = tuple(spec.head_features)
    return parameterizations.linear_head(
        names,
        features,
        len(features) or obs_size(),
        lipschitz_coef=spec.lipschitz.coef,
        lipschitz_k=spec.lipschitz.k,
    )


# ``reward.parameterization``: how the weights of the terms are encoded as params (``dynamic``:
# the free weights, multiplied during training by rlx.rewards.dynamic's rule).
PARAMETERIZATIONS = {
    "free": _free,
    "dynamic": _free,
    "fixed_sign": _fixed_sign,
    "log_scale": _log_scale,
    "simplex": _simplex,
    "linear_head": _linear_head,
}


def _weights(spec, obs_size):
    names = tuple(spec.weights)
    weights = PARAMETERIZATIONS[spec.parameterization](spec, names, obs_size)
    return names, weights, weights.encode(dict(spec.weights))


def _sum(spec, obs_size):
    names, weights, raw = _weights(spec, obs_size)
    return combinations.weighted_sum(names, weights), raw


def _product(spec, obs_size):
    names, weights, raw = _weights(spec, obs_size)
    factors = dict(spec.product.factors)
    fn = combinations.product(names, tuple(factors), weights)
    return fn, {"progress": raw, "exponents": factors}


def _geometric_mean(spec, obs_size):
    names, weights, raw = _weights(spec, obs_size)
    return combinations.geometric_mean(names, weights, clip=spec.geometric_mean.clip), raw


def _gated(spec, obs_size):
    levels = [tuple(level.weights) for level in spec.gated.levels]
    params = {
        "levels": [dict(level.weights) for level in spec.gated.levels],
        "thresholds": [level.threshold for level in spec.gated.levels],
        "temperature": spec.gated.temperature,
    }
    return combinations.gated(levels, soft=spec.gated.soft), params


def _gated_outcome(spec, obs_size):
    names, weights, raw = _weights(spec, obs_size)
    outcome = spec.outcome
    fn = combinations.gated_outcome(outcome.term, names, outcome.aggregate, outcome.soft, weights)
    params = {
        "immediate": raw,
        "outcome_weight": outcome.weight,
        "threshold": outcome.threshold,
        "temperature": outcome.temperature,
    }
    return fn, params


# ``reward.combine``: how the (weighted) terms become one reward.
COMBINES = {
    "sum": _sum,
    "product": _product,
    "geometric_mean": _geometric_mean,
    "gated": _gated,
    "gated_outcome": _gated_outcome,
}


def _potential(stage: dict, obs_size):
    coefs = dict(stage["signals"])
    schedule = {"scale": stage["scale"], "final_scale": stage["final_scale"]}
    if stage["learned"]:
        features = tuple(stage["features"]) or tuple(coefs)
        lipschitz = stage["lipschitz"]
        potential = shaping_lib.linear_potential(features, lipschitz["coef"], lipschitz["k"])
        size = len(features) or obs_size()
        kernel = np.asarray([coefs.get(name, 0.0) for name in features], np.float32)
        params = {"kernel": kernel if features else np.zeros((size,), np.float32), "bias": 0.0}
    else:
        potential = shaping_lib.signal_potential(tuple(coefs))
        params = {"coef": coefs}
    fn = shaping_lib.potential_based(potential, decay_updates=stage["decay_updates"])
    return fn, {"potential": params, **schedule}


def _bounded(stage: dict, obs_size):
    fn = shaping_lib.bounded(stage["mode"], running=stage["running"])
    keys = ("k", "reference", "momentum", "dense_weight")
    return fn, {key: stage[key] for key in keys}


def _clip(stage: dict, obs_size):
    return shaping_lib.clip(), {"low": stage["low"], "high": stage["high"]}


# ``reward.shaping[i]``: the kinds of shaping stage, applied in order after the combination.
SHAPING = {"potential": _potential, "bounded": _bounded, "clip": _clip}


def build(spec, env) -> tuple[RewardFn, dict]:
    """(RewardFn, params) for a resolved ``RewardConfig`` ``spec`` on ``env``.

    params: {'normalize': {} (if terms are normalised), 'combine': ..., '<stage>': ...} with the
    shaping stages named by kind ('potential', 'bounded', 'clip'; a repeated kind gets '_2',
    '_3', ...).
    """
    size_cache: list[int] = []

    def obs_size() -> int:
        if not size_cache:
            size_cache.append(observation_size(env))
        return size_cache[0]

    code = spec.code
    if code.file and code.mode == "reward":  # the user's function is the combination
        fn = code_lib.load_function(code.file, code.function)
        combine, params = code_lib.as_reward(fn), dict(code.params)
    else:
        combine, params = COMBINES[spec.combine](spec, obs_size)
    params = {"combine": params}
    terms = []
    if spec.normalize.terms:
        terms.append(
            ("normalize", shaping_lib.normalize_terms(spec.normalize.terms, spec.normalize.center))
        )
        params["normalize"] = {}
    stages, counts = [], {}
    for item in spec.shaping:
        ((kind, stage),) = item.items()
        counts[kind] = counts.get(kind, 0) + 1
        name = kind if counts[kind] == 1 else f"{kind}_{counts[kind]}"
        fn, stage_params = SHAPING[kind](stage, obs_size)
        stages.append((name, fn))
        params[name] = stage_params
    reward_fn = chain(combine, shaping=stages, terms=terms)
    # inside the code terms' wrapper (below), so that they can be objectives too
    if spec.parameterization == "dynamic":
        objectives = tuple(spec.dynamic.objectives)
        signs = {name: float(np.sign(spec.weights[name])) for name in objectives}
        reward_fn = dynamic_lib.dynamic(reward_fn, objectives, signs)
        keys = ("temperature", "momentum", "period", "eps")
        params["dynamic"] = {k: float(getattr(spec.dynamic, k)) for k in keys}
    if spec.constraints:
        specs = {
            c["name"]: (
                ("term", c["term"]) if c["term"] else ("signal", c["signal"]),
                c["statistic"],
            )
            for c in spec.constraints
        }
        reward_fn = constraints_lib.constrained(reward_fn, specs)
        keys = ("bound", "step_size", "init", "kp", "kd")
        params["constraints"] = {
            c["name"]: {k: float(c[k]) for k in keys} for c in spec.constraints
        }
    # outside the constraints, so that a constraint can bound a code term too
    if code.file and code.mode == "terms":
        fn = code_lib.load_function(code.file, code.function)
        reward_fn = code_lib.with_terms(reward_fn, fn, tuple(code.terms))
        params["code"] = dict(code.params)
    if spec.schedule:
        reward_fn, params = _schedule(reward_fn, params, spec.schedule)
    return reward_fn, params


def _schedule(reward_fn, params: dict, schedule: dict):
    """``reward.schedule``: the params at its paths follow their schedules (rlx.rewards.schedule).
    A path that names no scalar reward param is a ValueError naming the ones there are."""
    for path in schedule:
        try:
            leaf = schedules.get_path(params, path)
        except (KeyError, TypeError):
            leaf = None
        if leaf is None or np.ndim(leaf) != 0:
            known = ", ".join(_scalar_paths(params))
            raise ValueError(
                f"reward.schedule.{path}: no scalar reward param there (there are: {known})"
            )
    specs = {path: (entry["kind"], entry["on"]) for path, entry in schedule.items()}
    out = {**params, "schedule": {path: schedules.params_of(e) for path, e in schedule.items()}}
    return schedules.scheduled(reward_fn, specs), out


def _scalar_paths(tree, prefix: str = "") -> list[str]:
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _scalar_paths(v, f"{prefix}{k}/")]
    return [prefix.rstrip("/")] if np.ndim(tree) == 0 else []
