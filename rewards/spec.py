"""A reward spec (the ``reward`` section of a config, resolved) -> (RewardFn, initial params).

The spec says which terms, combination, term transforms and shaping stages exist (static); the
returned params pytree holds every number in it (weights, exponents, thresholds, temperatures,
potential coefficients, sigmoid steepness, references, clip bounds) as traced leaves, so a
compiled train step serves any values of them. ``rlx.config`` validates the spec against the env
(names, ranges) before this runs.
"""

from __future__ import annotations

import numpy as np

from rlx.rewards import combine as combinations
from rlx.rewards import shaping as shaping_lib
from rlx.rewards import weights as parameterizations
from rlx.rewards.base import RewardFn, chain


def _parameterization(spec, names, obs_size):
    kind, weights = spec.parameterization, dict(spec.weights)
    if kind == "free":
        return parameterizations.free()
    signs = {name: float(np.sign(value)) or 1.0 for name, value in weights.items()}
    if kind == "fixed_sign":
        return parameterizations.fixed_sign(signs)
    if kind == "simplex":
        return parameterizations.simplex(signs, sum(abs(v) for v in weights.values()))
    if kind == "linear_head":
        features = tuple(spec.head_features)
        return parameterizations.linear_head(
            names,
            features,
            len(features) or obs_size(),
            lipschitz_coef=spec.lipschitz.coef,
            lipschitz_k=spec.lipschitz.k,
        )
    raise ValueError(f"unknown parameterization {kind!r}")


def _combination(spec, obs_size):
    names = tuple(spec.weights)
    kind = spec.combine
    if kind == "gated":
        levels = [tuple(level.weights) for level in spec.gated.levels]
        params = {
            "levels": [dict(level.weights) for level in spec.gated.levels],
            "thresholds": [level.threshold for level in spec.gated.levels],
            "temperature": spec.gated.temperature,
        }
        return combinations.gated(levels, soft=spec.gated.soft), params
    weights = _parameterization(spec, names, obs_size)
    raw = weights.encode(dict(spec.weights))
    if kind == "sum":
        return combinations.weighted_sum(names, weights), raw
    if kind == "product":
        factors = dict(spec.product.factors)
        fn = combinations.product(names, tuple(factors), weights)
        return fn, {"progress": raw, "exponents": factors}
    if kind == "geometric_mean":
        return combinations.geometric_mean(names, weights, clip=spec.geometric_mean.clip), raw
    if kind == "gated_outcome":
        outcome = spec.outcome
        fn = combinations.gated_outcome(
            outcome.term, names, outcome.aggregate, outcome.soft, weights
        )
        params = {
            "immediate": raw,
            "outcome_weight": outcome.weight,
            "threshold": outcome.threshold,
            "temperature": outcome.temperature,
        }
        return fn, params
    raise ValueError(f"unknown combination {kind!r}")


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


def _shaping_stage(kind: str, stage: dict, obs_size):
    if kind == "potential":
        return _potential(stage, obs_size)
    if kind == "bounded":
        fn = shaping_lib.bounded(stage["mode"], running=stage["running"])
        keys = ("k", "reference", "momentum", "dense_weight")
        return fn, {key: stage[key] for key in keys}
    if kind == "clip":
        return shaping_lib.clip(), {"low": stage["low"], "high": stage["high"]}
    raise ValueError(f"unknown shaping stage {kind!r}")


def build(spec, env) -> tuple[RewardFn, dict]:
    """(RewardFn, params) for a resolved ``RewardConfig`` ``spec`` on ``env``.

    params: {'normalize': {} (if terms are normalised), 'combine': ..., '<stage>': ...} with the
    shaping stages named by kind ('potential', 'bounded', 'clip'; a repeated kind gets '_2',
    '_3', ...).
    """
    from rlx.envs import observation_size

    size_cache: list[int] = []

    def obs_size() -> int:
        if not size_cache:
            size_cache.append(observation_size(env))
        return size_cache[0]

    combine, params = _combination(spec, obs_size)
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
        fn, stage_params = _shaping_stage(kind, stage, obs_size)
        stages.append((name, fn))
        params[name] = stage_params
    return chain(combine, shaping=stages, terms=terms), params
