"""Strict, typed run configuration: YAML file + dotted overrides -> a frozen ``Config``.

This module only assembles: each layer owns its section's schema (``rlx.envs.schema``,
``rlx.rewards.schema``, ``rlx.learn.schema``, ``rlx.meta.schema``; the run's sections are here) and
``rlx.core.schema`` the field specs and coercion. Unknown keys, wrong types and out-of-range values
raise ``ConfigError`` naming the key and where it came from (the file, or the command-line
override). What depends on the env (its params' defaults, term and signal names) is checked
where the env is built, once: ``rlx.config.build``. Loading never writes anything.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from rlx.core import schema
from rlx.core.schema import (
    INT32_MAX,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    ConfigError,
    field,
    one_of,
)
from rlx.envs.schema import EnvConfig
from rlx.learn.schema import NetworkConfig, PPOConfig, TrainConfig
from rlx.meta import schema as meta_schema
from rlx.meta.schema import MetaConfig
from rlx.rewards.schema import RewardConfig


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    num_envs: int = field(16, POSITIVE)
    every_chunks: int = field(1, POSITIVE)
    seed: int = field(12345, SEED, wide=True)
    deterministic: bool = field(
        True, doc="the policy's mode action (as Brax's deterministic_eval); false samples it"
    )
    video_every_chunks: int = field(
        0, NON_NEGATIVE, "videos/step-<N>.mp4 every this many chunks (0: off; MuJoCo envs)"
    )
    video_width: int = field(320, POSITIVE)
    video_height: int = field(240, POSITIVE)


@dataclasses.dataclass(frozen=True)
class WandbConfig:
    mode: str = field("off", one_of(("off", "online", "offline")), "W&B logging (needs '.[wandb]')")
    project: str = field("rlx")
    entity: str = field("", doc="W&B team or user ('' : the default)")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    root: str = field("runs", doc="parent folder of run directories")
    chunk_iterations: int = field(10, POSITIVE, "train iterations per jitted chunk")
    checkpoint: bool = field(True)
    max_checkpoints: int = field(2, POSITIVE)
    tensorboard: bool = field(True)
    compilation_cache: str = field("~/.cache/rlx/jax", doc="'' turns the cache off")
    stall_timeout_s: float = field(
        1800.0,
        NON_NEGATIVE,
        "end the run (exit 4, its last checkpoint kept) when a compiled call, compile or "
        "checkpoint makes no progress for this long (0: never)",
    )
    wandb: WandbConfig = schema.section(WandbConfig)


@dataclasses.dataclass(frozen=True)
class Config:
    env: EnvConfig = schema.section(EnvConfig)
    reward: RewardConfig = schema.section(RewardConfig)
    ppo: PPOConfig = schema.section(PPOConfig)
    train: TrainConfig = schema.section(TrainConfig)
    network: NetworkConfig = schema.section(NetworkConfig)
    eval: EvalConfig = schema.section(EvalConfig)
    run: RunConfig = schema.section(RunConfig)
    meta: MetaConfig = schema.section(MetaConfig)

    @property
    def source(self) -> schema.Source:
        """Where this config's keys came from (set by ``load``), for error messages."""
        return self.__dict__.get("_source") or schema.Source("config")

    def problems(self):
        samples = self.train.num_envs * self.train.unroll_length
        if samples % self.train.num_minibatches:
            yield "train.num_minibatches", f"must divide num_envs * unroll_length = {samples}"
        elif self.network.memory != "none" and self.train.num_envs % self.train.num_minibatches:
            yield (
                "train.num_minibatches",
                f"must divide num_envs = {self.train.num_envs}: a recurrent policy "
                f"(network.memory: {self.network.memory}) learns from minibatches of whole envs",
            )
        if samples > INT32_MAX:
            yield (
                ("train.num_envs", "train.unroll_length"),
                (
                    f"num_envs * unroll_length = {samples:,} samples per batch is more than "
                    f"{INT32_MAX:,}"
                ),
            )
        # The iteration counter (and the learning-rate schedule's) is an int32 in the state.
        iterations = max(self.iterations, self.meta_iterations * self.meta.ppo_iterations)
        if iterations > INT32_MAX:
            yield (
                ("train.total_steps", "train.num_envs", "train.unroll_length"),
                (
                    f"{self.train.total_steps:,} steps make {iterations:,} iterations, more than "
                    f"the {INT32_MAX:,} a run counts"
                ),
            )

    @property
    def iterations(self) -> int:
        """Train iterations, rounded up to whole chunks."""
        per_iteration = self.train.num_envs * self.train.unroll_length
        wanted = math.ceil(self.train.total_steps / per_iteration)
        chunk = self.run.chunk_iterations
        return math.ceil(wanted / chunk) * chunk

    @property
    def meta_iterations(self) -> int:
        """Meta-iterations of ``rlx meta`` (each ``meta.ppo_iterations`` PPO iterations per
        learner), rounded up to whole chunks."""
        per_meta = self.train.num_envs * self.train.unroll_length * self.meta.ppo_iterations
        wanted = math.ceil(self.train.total_steps / per_meta)
        chunk = self.run.chunk_iterations
        return math.ceil(wanted / chunk) * chunk


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader refusing duplicate keys (PyYAML keeps the last one silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} on line {line} (first on line {seen[key]})"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; ConfigError for a missing, unreadable, non-text or
    malformed file and for a duplicate key (naming it and its line)."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML config is UTF-8 text)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a text file (a YAML config is UTF-8 text)")
    try:
        return _yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {_one_line(error)}") from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.num_envs=8'`` -> (['train', 'num_envs'], 8); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected dotted.key=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': bad key {key!r}")
    try:
        value = _yaml(raw) if raw else ""
    except yaml.YAMLError as error:
        message = f"override '{text}': not a valid YAML value: {_one_line(error)}"
        raise ConfigError(message) from None
    return key.split("."), value


def load(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Reads ``path`` (YAML), applies dotted overrides, validates strictly.

    Env-dependent checks and defaults (env params, reward terms and signals, ``meta.learn``)
    come where the env is built: ``rlx.config.build.resolve``.
    """
    path = Path(path)
    data = read_yaml(path) or {}
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
    if isinstance(data.get("meta"), dict) and "meta" not in overridden:
        # A file may carry the settings of several meta methods (a base that overrides switch
        # between): those the run's method does not take (rlx.meta.schema.METHOD_SETTINGS) are
        # dropped; one an override gave is kept, and checked against the method.
        given = {k.split(".")[1] for k in overridden if k.startswith("meta.")}
        data["meta"] = meta_schema.for_method(data["meta"], keep=given)
    source = schema.Source(str(path), overridden)
    return with_source(schema.from_dict(Config, data, source), source)


def with_source(config: Config, source: schema.Source) -> Config:
    """``config`` remembering ``source`` (``Config.source``); it returns ``config``."""
    object.__setattr__(config, "_source", source)
    return config


def to_dict(config: Config) -> dict:
    """Plain, YAML-ready dict of a Config (tuples become lists)."""
    return schema.plain(config)


def dump(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
