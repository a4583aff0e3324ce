"""The ``reward`` section of a config: its schema, and its validation against an env.

Which combinations, parameterisations and shaping stages exist is ``rlx.rewards.spec``'s
registries (``COMBINES``, ``PARAMETERIZATIONS``, ``SHAPING``); ``resolve`` checks every term,
signal and parameter against the env's names and fills in each stage's defaults, before
``spec.build`` runs.
"""

from __future__ import annotations

import dataclasses

from rlx.core import schema
from rlx.core.schema import NON_NEGATIVE, POSITIVE, UNIT, field, one_of
from rlx.rewards import spec
from rlx.rewards.constraints import STATISTICS
from rlx.rewards.schedule import KINDS


@dataclasses.dataclass(frozen=True)
class LipschitzConfig:
    coef: float = field(0.0, NON_NEGATIVE, "gradient-penalty coefficient (0: off)")
    k: float = field(1.0, POSITIVE, "allowed slope")


@dataclasses.dataclass(frozen=True)
class ProductConfig:
    factors: dict = field({}, doc="factor term -> exponent; reward = progress * prod f^a")


@dataclasses.dataclass(frozen=True)
class GeometricMeanConfig:
    clip: bool = field(True, doc="clip each scaled term to [-1, 1] first")


@dataclasses.dataclass(frozen=True)
class GateLevelConfig:
    weights: dict = field({}, doc="term -> weight of this level's sum")
    threshold: float = field(0.0, doc="lower levels count while this level >= threshold")


@dataclasses.dataclass(frozen=True)
class GatedConfig:
    levels: tuple[GateLevelConfig, ...] = field((), doc="highest priority first")
    soft: bool = field(False, doc="sigmoid gates (differentiable in the thresholds)")
    temperature: float = field(0.1, POSITIVE)


@dataclasses.dataclass(frozen=True)
class OutcomeConfig:
    term: str = field("", doc="the term whose episode outcome gates the weighted terms")
    threshold: float = field(0.5)
    weight: float = field(1.0, doc="weight of the outcome, paid on the episode's last step")
    aggregate: str = field("last", one_of(("last", "max")))
    soft: bool = field(False)
    temperature: float = field(0.1, POSITIVE)


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    terms: tuple[str, ...] = field((), doc="terms divided by their running std ('all': every)")
    center: bool = field(False, doc="also subtract the running mean")


@dataclasses.dataclass(frozen=True)
class PotentialConfig:
    signals: dict = field({}, doc="signal -> coefficient of Phi(s) = sum c_i signal_i(s)")
    learned: bool = field(False, doc="Phi = kernel . features + bias, learnable params")
    features: tuple[str, ...] = field((), doc="learned Phi's input signals (empty: obs)")
    scale: float = field(1.0)
    final_scale: float = field(1.0, doc="scale after decay_updates updates (dynamic Phi)")
    decay_updates: int = field(0, NON_NEGATIVE, "0: a fixed scale")
    lipschitz: LipschitzConfig = dataclasses.field(default_factory=LipschitzConfig)


@dataclasses.dataclass(frozen=True)
class BoundedConfig:
    mode: str = field("step", one_of(("step", "episode")))
    k: float = field(1.0, POSITIVE, "sigmoid steepness")
    reference: float = field(0.0, doc="r_ref (or R_ref), unless running")
    running: bool = field(False, doc="reference = moving average of the reward (or return)")
    momentum: float = field(0.99, UNIT)
    dense_weight: float = field(0.0, doc="episode mode: weight of the dense reward kept")


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    low: float = field(-10.0)
    high: float = field(10.0)


# The schema of each kind of shaping stage (the kinds are rewards/spec.py's SHAPING).
SHAPING_CONFIGS = {"potential": PotentialConfig, "bounded": BoundedConfig, "clip": ClipConfig}


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    kind: str = field("linear", one_of(KINDS))
    start: float = field(0.0, doc="linear, cosine: the value at update 0")
    end: float = field(1.0, doc="linear, cosine: the value from `updates` on")
    updates: int = field(100, POSITIVE, "linear, cosine: updates to go from start to end")
    boundaries: tuple[int, ...] = field((), doc="step: the updates at which the value changes")
    values: tuple[float, ...] = field((), doc="step, gated: the values in order")
    thresholds: tuple[float, ...] = field((), doc="gated: what `on` must reach to advance")
    on: str = field("primary_return", doc="gated: primary_return, or a term's episode sum")


@dataclasses.dataclass(frozen=True)
class ConstraintConfig:
    name: str = field("", doc="its name in the logs (default: the term or signal)")
    term: str = field("", doc="the constrained term (or give a signal)")
    signal: str = field("", doc="the constrained signal (rate: an event, true above 0.5)")
    statistic: str = field("sum", one_of(STATISTICS), "per episode: sum, mean per step, rate")
    bound: float = field(0.0, doc="statistic <= bound")
    step_size: float = field(0.01, POSITIVE, "dual ascent step of the multiplier")
    init: float = field(0.0, NON_NEGATIVE, "the multiplier's start")
    kp: float = field(0.0, NON_NEGATIVE, "PID: proportional gain on the latest violation")
    kd: float = field(0.0, NON_NEGATIVE, "PID: derivative gain on its change")


@dataclasses.dataclass(frozen=True)
class DynamicConfig:
    """``parameterization: dynamic``: weights adapted from each objective's improvement rate
    (``rlx.rewards.dynamic``)."""

    objectives: tuple[str, ...] = field((), doc="terms whose weights adapt (empty: all weighted)")
    temperature: float = field(2.0, POSITIVE, "softmax temperature (large: the fixed weights)")
    momentum: float = field(0.9, UNIT, "moving average of each objective's episode sums")
    period: int = field(10, POSITIVE, "updates between weight changes")
    eps: float = field(1e-3, POSITIVE, "added to |J| in the relative improvement")


@dataclasses.dataclass(frozen=True)
class CodeConfig:
    file: str = field("", doc="a Python file with the reward function ('' : none)")
    function: str = field("reward")
    params: dict = field({}, doc="name -> float: traced params the function receives")
    mode: str = field("terms", one_of(("terms", "reward")), "new terms, or the reward itself")
    sha256: str = field("", doc="filled in when resolved: the file's hash, checked on resume")
    terms: tuple[str, ...] = field((), doc="filled in when resolved: the terms it adds")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The reward spec: terms and weights, the combination, the shaping chain."""

    weights: dict = field({}, doc="term name -> weight")
    combine: str = field("sum", one_of(spec.COMBINES))
    parameterization: str = field("free", one_of(spec.PARAMETERIZATIONS))
    head_features: tuple[str, ...] = field((), doc="linear_head inputs: signals (empty: obs)")
    lipschitz: LipschitzConfig = dataclasses.field(default_factory=LipschitzConfig)
    product: ProductConfig = dataclasses.field(default_factory=ProductConfig)
    geometric_mean: GeometricMeanConfig = dataclasses.field(default_factory=GeometricMeanConfig)
    gated: GatedConfig = dataclasses.field(default_factory=GatedConfig)
    outcome: OutcomeConfig = dataclasses.field(default_factory=OutcomeConfig)
    normalize: NormalizeConfig = dataclasses.field(default_factory=NormalizeConfig)
    shaping: tuple[dict, ...] = field((), doc="[{potential|bounded|clip: {...}}, ...] in order")
    schedule: dict = field({}, doc="param path -> {kind: linear|cosine|step|gated, ...}")
    code: CodeConfig = dataclasses.field(default_factory=CodeConfig)
    constraints: tuple[dict, ...] = field((), doc="[{term|signal, statistic, bound, ...}]")
    dynamic: DynamicConfig = dataclasses.field(default_factory=DynamicConfig)


def resolve(reward: RewardConfig, env_name: str, env, source: schema.Source) -> RewardConfig:
    """Checks every term, signal and parameter of the reward spec against the env; coerces
    weights to floats and fills each shaping stage's defaults."""
    terms, signals = tuple(env.term_names), tuple(env.signal_names)
    code = _resolve_code(reward.code, env, source)
    if code.mode == "terms":
        terms = (*terms, *code.terms)

    def floats(mapping: dict, key: str, known: tuple[str, ...], what: str) -> dict:
        out = {}
        for name, value in mapping.items():
            if name not in known:
                listed = ", ".join(known) or "none"
                raise source.error(
                    f"{key}.{name}", f"unknown {what} for env {env_name!r} (the env has: {listed})"
                )
            out[name] = schema.coerce(value, float, f"{key}.{name}", source)
        return out

    def names_in(values, key: str, known: tuple[str, ...], what: str) -> None:
        floats(dict.fromkeys(values, 0.0), key, known, what)

    weights = floats(reward.weights, "reward.weights", terms, "reward term")
    changes: dict = {"weights": weights, "code": code}
    changes |= _resolve_combine(reward, code, weights, terms, env_name, floats, source)
    if reward.parameterization in ("fixed_sign", "log_scale"):
        for name, value in weights.items():
            if value == 0:
                raise source.error(
                    f"reward.weights.{name}", f"{reward.parameterization} needs a nonzero weight"
                )
    names_in(reward.head_features, "reward.head_features", signals, "signal")
    normalized = reward.normalize.terms
    if normalized == ("all",):
        normalized = terms
    names_in(normalized, "reward.normalize.terms", terms, "reward term")
    changes["normalize"] = dataclasses.replace(reward.normalize, terms=tuple(normalized))
    changes["shaping"] = tuple(
        _resolve_shaping(i, item, signals, env_name, source, floats)
        for i, item in enumerate(reward.shaping)
    )
    changes["constraints"] = _resolve_constraints(reward.constraints, terms, signals, source)
    changes["dynamic"] = _resolve_dynamic(reward, weights, source)
    changes["schedule"] = {
        str(path): _resolve_schedule(str(path), entry, terms, source)
        for path, entry in reward.schedule.items()
    }
    return dataclasses.replace(reward, **changes)


def _resolve_dynamic(reward: RewardConfig, weights: dict, source: schema.Source) -> DynamicConfig:
    """``reward.dynamic`` with its objectives filled in (every nonzero weight by default);
    only with ``parameterization: dynamic`` and ``combine: sum``."""
    dynamic = reward.dynamic
    if reward.parameterization != "dynamic":
        if dynamic != DynamicConfig():
            raise source.error("reward.dynamic", "set reward.parameterization: dynamic to use it")
        return dynamic
    if reward.combine != "sum":
        raise source.error("reward.parameterization", "dynamic weights need combine: sum")
    objectives = tuple(dynamic.objectives) or tuple(n for n, w in weights.items() if w != 0)
    for name in objectives:
        if weights.get(name, 0.0) == 0.0:
            raise source.error(
                "reward.dynamic.objectives", f"{name!r} needs a nonzero weight in reward.weights"
            )
    if len(set(objectives)) < 2 or len(set(objectives)) != len(objectives):
        raise source.error(
            "reward.dynamic.objectives", f"needs two or more distinct terms, got {list(objectives)}"
        )
    if dynamic.momentum >= 1:
        raise source.error("reward.dynamic.momentum", "must be < 1")
    return dataclasses.replace(dynamic, objectives=objectives)


def _resolve_combine(reward, code, weights, terms, env_name, floats, source) -> dict:
    """The combination's own checks (gated levels, product factors, the outcome term)."""
    changes = {}
    combine = reward.combine
    if code.file and code.mode == "reward":
        if weights:
            raise source.error(
                "reward.weights", "reward.code with mode reward is the reward: give no weights"
            )
    elif combine == "gated":
        if weights:
            raise source.error(
                "reward.weights",
                "gated takes its weights per level: use reward.gated.levels[k].weights",
            )
        if not reward.gated.levels:
            raise source.error("reward.gated.levels", "name at least one level")
        levels = []
        for k, level in enumerate(reward.gated.levels):
            key = f"reward.gated.levels[{k}].weights"
            if not level.weights:
                raise source.error(key, f"name at least one term (the env has: {', '.join(terms)})")
            levels.append(
                dataclasses.replace(level, weights=floats(level.weights, key, terms, "reward term"))
            )
        changes["gated"] = dataclasses.replace(reward.gated, levels=tuple(levels))
        if reward.parameterization != "free":
            raise source.error("reward.parameterization", "gated levels take free weights")
    elif not weights:
        raise source.error(
            "reward.weights", f"name at least one term (the env has: {', '.join(terms)})"
        )
    if combine == "product":
        if not reward.product.factors:
            raise source.error("reward.product.factors", "name at least one factor term")
        factors = floats(reward.product.factors, "reward.product.factors", terms, "reward term")
        changes["product"] = ProductConfig(factors=factors)
    if combine == "gated_outcome" and reward.outcome.term not in terms:
        raise source.error(
            "reward.outcome.term",
            f"unknown reward term {reward.outcome.term!r} for env {env_name!r} "
            f"(the env has: {', '.join(terms)})",
        )
    return changes


def _resolve_constraints(items, terms, signals, source: schema.Source) -> tuple[dict, ...]:
    out, names = [], set()
    for i, item in enumerate(items):
        key = f"reward.constraints[{i}]"
        if not isinstance(item, dict):
            raise source.error(key, f"expected {{term|signal: ..., bound: ...}}, got {item!r}")
        parsed = schema.from_dict(ConstraintConfig, item, source, key)
        if bool(parsed.term) == bool(parsed.signal):
            raise source.error(key, "name one term or one signal")
        if parsed.term and parsed.term not in terms:
            raise source.error(
                f"{key}.term", f"unknown reward term (the env has: {', '.join(terms)})"
            )
        if parsed.signal and parsed.signal not in signals:
            raise source.error(
                f"{key}.signal", f"unknown signal (the env has: {', '.join(signals) or 'none'})"
            )
        name = parsed.name or parsed.term or parsed.signal
        if name in names or "/" in name:
            raise source.error(f"{key}.name", f"{name!r}: names must be unique, without '/'")
        names.add(name)
        out.append(schema.plain(dataclasses.replace(parsed, name=name)))
    return tuple(out)


def _resolve_code(code: CodeConfig, env, source: schema.Source) -> CodeConfig:
    """The user's reward file checked on one abstract step; its path made absolute, its hash
    and new terms filled in (a changed file on resume is an error)."""
    if not code.file:
        return code
    import jax

    from rlx.core import usercode
    from rlx.rewards import code as code_lib

    path = usercode.find(code.file, source.file)
    params = {
        name: schema.coerce(value, float, f"reward.code.params.{name}", source)
        for name, value in code.params.items()
    }
    try:
        fn = code_lib.load_function(path, code.function)
        digest = code_lib.sha256(path)
        if code.sha256 and code.sha256 != digest:
            raise code_lib.RewardCodeError(
                f"reward.code.file: {path} changed since the run started (sha256 "
                f"{code.sha256[:12]} then, {digest[:12]} now): restore it, or start a new run"
            )
        state = jax.eval_shape(env.reset, jax.random.key(0))
        new = code_lib.check(fn, path, code.mode, state.signals, state.terms, params)
    except code_lib.RewardCodeError as error:
        key, _, message = str(error).partition(": ")
        raise source.error(key, message) from None
    return dataclasses.replace(code, file=str(path), params=params, sha256=digest, terms=new)


def _resolve_schedule(path: str, entry, terms, source: schema.Source) -> dict:
    key = f"reward.schedule.{path}"
    if not isinstance(entry, dict):
        raise source.error(key, f"expected {{kind: {'|'.join(KINDS)}, ...}}, got {entry!r}")
    parsed = schema.from_dict(ScheduleConfig, entry, source, key)
    kind = parsed.kind
    if kind == "step":
        if len(parsed.values) != len(parsed.boundaries) + 1:
            raise source.error(f"{key}.values", "step needs one more value than boundaries")
        if list(parsed.boundaries) != sorted(set(parsed.boundaries)):
            raise source.error(f"{key}.boundaries", "must increase")
    if kind == "gated":
        if len(parsed.values) != len(parsed.thresholds) + 1:
            raise source.error(f"{key}.values", "gated needs one more value than thresholds")
        if parsed.on != "primary_return" and parsed.on not in terms:
            raise source.error(
                f"{key}.on", f"primary_return or a reward term (the env has: {', '.join(terms)})"
            )
    return schema.plain(parsed)


def _resolve_shaping(i: int, item, signals, env_name: str, source: schema.Source, floats) -> dict:
    key = f"reward.shaping[{i}]"
    if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in SHAPING_CONFIGS:
        raise source.error(
            key, f"expected one of {{{'|'.join(SHAPING_CONFIGS)}: {{...}}}}, got {item!r}"
        )
    kind, value = next(iter(item.items()))
    parsed = schema.from_dict(SHAPING_CONFIGS[kind], value, source, f"{key}.{kind}")
    if kind == "potential":
        coefs = floats(parsed.signals, f"{key}.potential.signals", signals, "signal")
        floats(dict.fromkeys(parsed.features, 0.0), f"{key}.potential.features", signals, "signal")
        if not parsed.learned and not coefs:
            raise source.error(
                f"{key}.potential.signals",
                f"name at least one signal, or set learned: true (the env has: "
                f"{', '.join(signals) or 'none'})",
            )
        parsed = dataclasses.replace(parsed, signals=coefs)
    if kind == "clip" and parsed.low >= parsed.high:
        raise source.error(f"{key}.clip", "low must be < high")
    return {kind: schema.plain(parsed)}
