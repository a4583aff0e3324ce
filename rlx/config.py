"""Strict, typed run configuration: YAML file + dotted overrides -> a frozen ``Config``.

Unknown keys, wrong types and out-of-range values raise ``ConfigError`` naming the key and where
it came from (the file, or the command-line override). Loading never writes anything.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config value; the message names the key and its source."""


def _field(default, check=None, doc: str = ""):
    """A dataclass field with an optional range check ``(predicate, 'must be ...')``."""
    if isinstance(default, dict | list):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"check": check, "doc": doc}
        )
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


POSITIVE = (lambda v: v > 0, "must be > 0")
NON_NEGATIVE = (lambda v: v >= 0, "must be >= 0")
UNIT = (lambda v: 0 <= v <= 1, "must be in [0, 1]")
OPEN_UNIT = (lambda v: 0 < v < 1, "must be in (0, 1)")


@dataclasses.dataclass(frozen=True)
class RandomizeConfig:
    """Domain randomisation of MJX envs: (low, high) scale ranges, drawn per env and episode."""

    mass: tuple[float, ...] = _field((1.0, 1.0), doc="body masses and inertias")
    friction: tuple[float, ...] = _field((1.0, 1.0), doc="sliding friction of every geom")
    actuator_gain: tuple[float, ...] = _field((1.0, 1.0), doc="actuator gains (and biases)")


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    name: str = _field("cartpole", doc="registered env name")
    reset_mode: str = _field(
        "fresh",
        (lambda v: v in ("fresh", "cached"), "must be fresh or cached"),
        "fresh: a real reset per episode; cached: back to each env's first state (as Brax)",
    )
    params: dict = _field({}, doc="the env's typed config (its dataclass fields)")
    randomize: RandomizeConfig = dataclasses.field(default_factory=lambda: RandomizeConfig())

    def randomization(self) -> dict | None:
        """Ranges for ``envs.make(randomize=...)``, None when nothing is randomised."""
        ranges = dataclasses.asdict(self.randomize)
        return ranges if any(tuple(r) != (1.0, 1.0) for r in ranges.values()) else None


COMBINES = ("sum", "product", "geometric_mean", "gated", "gated_outcome")
PARAMETERIZATIONS = ("free", "fixed_sign", "simplex", "linear_head")
SHAPING_KINDS = ("potential", "bounded", "clip")


def _one_of(options):
    return (lambda v: v in options, f"must be one of {'|'.join(options)}")


@dataclasses.dataclass(frozen=True)
class LipschitzConfig:
    coef: float = _field(0.0, NON_NEGATIVE, "gradient-penalty coefficient (0: off)")
    k: float = _field(1.0, POSITIVE, "allowed slope")


@dataclasses.dataclass(frozen=True)
class ProductConfig:
    factors: dict = _field({}, doc="factor term -> exponent; reward = progress * prod f^a")


@dataclasses.dataclass(frozen=True)
class GeometricMeanConfig:
    clip: bool = _field(True, doc="clip each scaled term to [-1, 1] first")


@dataclasses.dataclass(frozen=True)
class GateLevelConfig:
    weights: dict = _field({}, doc="term -> weight of this level's sum")
    threshold: float = _field(0.0, doc="lower levels count while this level >= threshold")


@dataclasses.dataclass(frozen=True)
class GatedConfig:
    levels: tuple[GateLevelConfig, ...] = _field((), doc="highest priority first")
    soft: bool = _field(False, doc="sigmoid gates (differentiable in the thresholds)")
    temperature: float = _field(0.1, POSITIVE)


@dataclasses.dataclass(frozen=True)
class OutcomeConfig:
    term: str = _field("", doc="the term whose episode outcome gates the weighted terms")
    threshold: float = _field(0.5)
    weight: float = _field(1.0, doc="weight of the outcome, paid on the episode's last step")
    aggregate: str = _field("last", _one_of(("last", "max")))
    soft: bool = _field(False)
    temperature: float = _field(0.1, POSITIVE)


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    terms: tuple[str, ...] = _field((), doc="terms divided by their running std ('all': every)")
    center: bool = _field(False, doc="also subtract the running mean")


@dataclasses.dataclass(frozen=True)
class PotentialConfig:
    signals: dict = _field({}, doc="signal -> coefficient of Phi(s) = sum c_i signal_i(s)")
    learned: bool = _field(False, doc="Phi = kernel . features + bias, learnable params")
    features: tuple[str, ...] = _field((), doc="learned Phi's input signals (empty: obs)")
    scale: float = _field(1.0)
    final_scale: float = _field(1.0, doc="scale after decay_updates updates (dynamic Phi)")
    decay_updates: int = _field(0, NON_NEGATIVE, "0: a fixed scale")
    lipschitz: LipschitzConfig = dataclasses.field(default_factory=LipschitzConfig)


@dataclasses.dataclass(frozen=True)
class BoundedConfig:
    mode: str = _field("step", _one_of(("step", "episode")))
    k: float = _field(1.0, POSITIVE, "sigmoid steepness")
    reference: float = _field(0.0, doc="r_ref (or R_ref), unless running")
    running: bool = _field(False, doc="reference = moving average of the reward (or return)")
    momentum: float = _field(0.99, UNIT)
    dense_weight: float = _field(0.0, doc="episode mode: weight of the dense reward kept")


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    low: float = _field(-10.0)
    high: float = _field(10.0)


SHAPING_CONFIGS = {"potential": PotentialConfig, "bounded": BoundedConfig, "clip": ClipConfig}


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The reward spec: terms and weights, the combination, the shaping chain."""

    weights: dict = _field({}, doc="term name -> weight")
    combine: str = _field("sum", _one_of(COMBINES))
    parameterization: str = _field("free", _one_of(PARAMETERIZATIONS))
    head_features: tuple[str, ...] = _field((), doc="linear_head inputs: signals (empty: obs)")
    lipschitz: LipschitzConfig = dataclasses.field(default_factory=LipschitzConfig)
    product: ProductConfig = dataclasses.field(default_factory=ProductConfig)
    geometric_mean: GeometricMeanConfig = dataclasses.field(default_factory=GeometricMeanConfig)
    gated: GatedConfig = dataclasses.field(default_factory=GatedConfig)
    outcome: OutcomeConfig = dataclasses.field(default_factory=OutcomeConfig)
    normalize: NormalizeConfig = dataclasses.field(default_factory=NormalizeConfig)
    shaping: tuple[dict, ...] = _field((), doc="[{potential|bounded|clip: {...}}, ...] in order")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    learning_rate: float = _field(3e-4, POSITIVE)
    entropy_cost: float = _field(0.01, NON_NEGATIVE)
    value_cost: float = _field(0.5, NON_NEGATIVE)
    clip_epsilon: float = _field(0.2, OPEN_UNIT)
    gamma: float = _field(0.99, UNIT)
    gae_lambda: float = _field(0.95, UNIT)
    max_grad_norm: float = _field(0.5, POSITIVE)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = _field(0, NON_NEGATIVE)
    total_steps: int = _field(500_000, POSITIVE)
    num_envs: int = _field(8, POSITIVE)
    unroll_length: int = _field(128, POSITIVE)
    num_minibatches: int = _field(4, POSITIVE)
    num_epochs: int = _field(4, POSITIVE)
    anneal_learning_rate: bool = _field(True)
    normalize_observations: bool = _field(True)
    normalize_advantages: bool = _field(True)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    policy_hidden: tuple[int, ...] = _field((64, 64))
    value_hidden: tuple[int, ...] = _field((64, 64))
    activation: str = _field(
        "tanh", (lambda v: v in ("tanh", "relu", "swish", "elu"), "must be tanh|relu|swish|elu")
    )
    init_log_std: float = _field(0.0)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    num_envs: int = _field(16, POSITIVE)
    every_chunks: int = _field(1, POSITIVE)
    seed: int = _field(12345, NON_NEGATIVE)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    root: str = _field("runs", doc="parent folder of run directories")
    chunk_iterations: int = _field(10, POSITIVE, "train iterations per jitted chunk")
    checkpoint: bool = _field(True)
    max_checkpoints: int = _field(2, POSITIVE)
    tensorboard: bool = _field(True)
    compilation_cache: str = _field("~/.cache/rlx/jax", doc="'' turns the cache off")


META_METHODS = ("one_step", "unrolled", "implicit", "population")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """``rlx meta``: bilevel optimisation of the reward params (see rlx/meta)."""

    method: str = _field("one_step", _one_of(META_METHODS))
    inner_iterations: int = _field(1, POSITIVE, "PPO iterations per meta-iteration")
    remat: bool = _field(True, doc="unrolled: rematerialise each inner update (jax.checkpoint)")
    grad_steps: int = _field(
        0,
        NON_NEGATIVE,
        "one_step/unrolled: through the last N minibatch steps of an update (0: all)",
    )
    learn: tuple[str, ...] = _field((), doc="reward param paths learned, e.g. combine/aux (all)")
    learn_gamma: bool = _field(False, doc="also learn the inner discount (a logit)")
    outer_learning_rate: float = _field(1e-2, POSITIVE, "Adam step on phi")
    outer_gamma: float = _field(0.99, UNIT, "discount of the primary objective")
    outer_lambda: float = _field(0.95, UNIT, "GAE lambda of the primary advantages")
    l2: float = _field(0.0, NON_NEGATIVE, "l2 * |phi|^2 over the learned reward params")
    gamma_l2: float = _field(0.0, NON_NEGATIVE, "gamma_l2 * gamma_phi (pushes gamma down)")
    critic_learning_rate: float = _field(1e-3, POSITIVE, "Adam step of the primary critic")
    critic_hidden: tuple[int, ...] = _field((64, 64))
    warmup: int = _field(0, NON_NEGATIVE, "meta-iterations before phi first moves")
    neumann_steps: int = _field(5, NON_NEGATIVE, "implicit: Neumann series terms K")
    neumann_alpha: float = _field(1e-2, POSITIVE, "implicit: Neumann step alpha")
    population_size: int = _field(8, POSITIVE)
    exploit_fraction: float = _field(0.25, OPEN_UNIT, "population: share replaced each time")
    perturb_scale: float = _field(0.2, NON_NEGATIVE, "population: explore noise on phi")
    init_scale: float = _field(0.5, NON_NEGATIVE, "population: initial spread of phi")


@dataclasses.dataclass(frozen=True)
class Config:
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    meta: MetaConfig = dataclasses.field(default_factory=MetaConfig)

    @property
    def iterations(self) -> int:
        """Train iterations, rounded up to whole chunks."""
        per_iteration = self.train.num_envs * self.train.unroll_length
        wanted = math.ceil(self.train.total_steps / per_iteration)
        chunk = self.run.chunk_iterations
        return math.ceil(wanted / chunk) * chunk

    @property
    def meta_iterations(self) -> int:
        """Meta-iterations of ``rlx meta`` (each ``meta.inner_iterations`` PPO iterations per
        learner), rounded up to whole chunks."""
        per_meta = self.train.num_envs * self.train.unroll_length * self.meta.inner_iterations
        wanted = math.ceil(self.train.total_steps / per_meta)
        chunk = self.run.chunk_iterations
        return math.ceil(wanted / chunk) * chunk


class _Source:
    """Says where a key came from: an override if one set it, else the file."""

    def __init__(self, file: str, overridden: dict[str, str]):
        self.file, self.overridden = file, overridden

    def error(self, key: str, message: str) -> ConfigError:
        for prefix, text in self.overridden.items():
            related = key == prefix or key.startswith(prefix + ".") or prefix.startswith(key + ".")
            if related:
                return ConfigError(f"override '{text}': key '{key}': {message}")
        return ConfigError(f"{self.file}: key '{key}': {message}")


def _coerce(value: Any, kind: Any, key: str, source: _Source) -> Any:
    origin = typing.get_origin(kind)
    if kind is bool:
        if not isinstance(value, bool):
            raise source.error(key, f"expected true or false, got {value!r}")
        return value
    if kind is int:
        # YAML reads 5e5 as a string and 1e6 as a float; accept whole numbers written so.
        if isinstance(value, str | float) and not isinstance(value, bool):
            try:
                as_float = float(value)
            except ValueError:
                as_float = math.nan
            if as_float.is_integer():
                return int(as_float)
        if isinstance(value, bool) or not isinstance(value, int):
            raise source.error(key, f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool):
            raise source.error(key, f"expected a number, got {value!r}")
        try:
            result = float(value)  # PyYAML reads 3e-4 as a string.
        except (TypeError, ValueError):
            raise source.error(key, f"expected a number, got {value!r}") from None
        if not math.isfinite(result):
            raise source.error(key, f"expected a finite number, got {value!r}")
        return result
    if kind is str:
        if not isinstance(value, str):
            raise source.error(key, f"expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise source.error(key, f"expected a list, got {value!r}")
        inner = typing.get_args(kind)[0]
        return tuple(_coerce(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value))
    if kind is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise source.error(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, source, key)
    raise TypeError(f"unsupported config type {kind} at {key}")


def from_dict(cls: type, data: Any, source: _Source, prefix: str = "") -> Any:
    """Builds dataclass ``cls`` from ``data``, strictly (see module docstring)."""
    where = prefix or "top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise source.error(where, f"expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in data:
        if name not in fields:
            key = f"{prefix}.{name}" if prefix else str(name)
            raise source.error(key, f"unknown key (known: {', '.join(fields)})")
    values = {}
    for name, field in fields.items():
        if name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        value = _coerce(data[name], hints[name], key, source)
        check = field.metadata.get("check")
        if check is not None and not check[0](value):
            raise source.error(key, f"{check[1]}, got {data[name]!r}")
        values[name] = value
    return cls(**values)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.num_envs=8'`` -> (['train', 'num_envs'], 8); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected dotted.key=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': bad key {key!r}")
    return key.split("."), yaml.safe_load(raw) if raw else ""


def load(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Reads ``path`` (YAML), applies dotted overrides, validates strictly.

    The result is resolved: env params hold every field of the env's config, reward weights
    are floats.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    overridden = {}
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for part in keys[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': key '{part}' is not a mapping")
            node = child
        node[keys[-1]] = value
        overridden[".".join(keys)] = text
    source = _Source(str(path), overridden)
    return _resolve(from_dict(Config, data, source), source)


def _resolve(config: Config, source: _Source) -> Config:
    """Env-dependent and cross-field checks; fills in the env's defaults."""
    from rlx import envs

    try:
        cls = envs.env_class(config.env.name)
    except envs.UnknownEnvError as error:
        raise source.error("env.name", str(error.args[0])) from None
    if "brax_name" in config.env.params:
        raise source.error("env.params.brax_name", "set the Brax env in env.name: brax:<name>")
    if "playground_name" in config.env.params:
        raise source.error(
            "env.params.playground_name", "set the Playground env in env.name: playground:<Name>"
        )
    try:
        env_params = dataclasses.asdict(from_dict(cls, config.env.params, source, "env.params"))
    except ImportError as error:  # an optional env library (brax, playground) is missing
        raise source.error("env.name", str(error)) from None
    env_params.pop("brax_name", None)
    env_params.pop("playground_name", None)
    try:
        env = envs.make_raw(config.env.name, **env_params)
    except (ValueError, ImportError) as error:
        raise source.error("env.name", str(error)) from None
    reward = _resolve_reward(config.reward, config.env.name, env, source)
    for field, bounds in dataclasses.asdict(config.env.randomize).items():
        if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
            raise source.error(
                f"env.randomize.{field}", f"expected [low, high] with 0 < low <= high, got {bounds}"
            )
    if config.env.randomization():
        try:
            envs.DomainRandomization(env, **config.env.randomization())
        except envs.NotRandomizableError as error:
            raise source.error("env.randomize", str(error)) from None
    if config.meta.method == "population":
        size, fraction = config.meta.population_size, config.meta.exploit_fraction
        if size < 2 or not 1 <= int(size * fraction) <= size // 2:
            raise source.error(
                "meta.exploit_fraction",
                f"population_size * exploit_fraction must round down to between 1 and "
                f"population_size / 2, got {size} x {fraction}",
            )
    samples = config.train.num_envs * config.train.unroll_length
    if samples % config.train.num_minibatches:
        raise source.error(
            "train.num_minibatches", f"must divide num_envs * unroll_length = {samples}"
        )
    if config.meta.learn:
        from rlx.meta.learner import learn_mask
        from rlx.rewards import spec

        try:
            learn_mask(spec.build(reward, env)[1], config.meta.learn)
        except ValueError as error:
            raise source.error("meta.learn", str(error)) from None
    return dataclasses.replace(
        config,
        env=dataclasses.replace(config.env, params=env_params),
        reward=reward,
    )


def _resolve_reward(reward: RewardConfig, env_name: str, env, source: _Source) -> RewardConfig:
    """Checks every term, signal and parameter of the reward spec against the env; coerces
    weights to floats and fills each shaping stage's defaults."""
    terms, signals = tuple(env.term_names), tuple(env.signal_names)

    def floats(mapping: dict, key: str, known: tuple[str, ...], what: str) -> dict:
        out = {}
        for name, value in mapping.items():
            if name not in known:
                listed = ", ".join(known) or "none"
                raise source.error(
                    f"{key}.{name}", f"unknown {what} for env {env_name!r} (the env has: {listed})"
                )
            out[name] = _coerce(value, float, f"{key}.{name}", source)
        return out

    def names_in(values, key: str, known: tuple[str, ...], what: str) -> None:
        floats(dict.fromkeys(values, 0.0), key, known, what)

    weights = floats(reward.weights, "reward.weights", terms, "reward term")
    changes: dict = {"weights": weights}
    combine = reward.combine
    if combine == "gated":
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
    if reward.parameterization == "fixed_sign":
        for name, value in weights.items():
            if value == 0:
                raise source.error(f"reward.weights.{name}", "fixed_sign needs a nonzero weight")
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
    return dataclasses.replace(reward, **changes)


def _resolve_shaping(i: int, item, signals, env_name: str, source: _Source, floats) -> dict:
    key = f"reward.shaping[{i}]"
    if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in SHAPING_KINDS:
        raise source.error(
            key, f"expected one of {{{'|'.join(SHAPING_KINDS)}: {{...}}}}, got {item!r}"
        )
    kind, value = next(iter(item.items()))
    parsed = from_dict(SHAPING_CONFIGS[kind], value, source, f"{key}.{kind}")
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
    return {kind: to_dict(parsed)}


def to_dict(config: Config) -> dict:
    """Plain, YAML-ready dict of a Config (tuples become lists)."""

    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def dump(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
