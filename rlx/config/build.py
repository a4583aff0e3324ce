"""From a loaded config to what runs: the env, the reward, the learner and its traced hparams.

``build(config)`` is the one place a config meets the envs and the reward layer: it resolves
the env-dependent parts (the env's params with their defaults, the reward's terms and signals,
``meta.learn``), raising ``ConfigError`` naming the key and its source, and builds each piece
once. ``rlx train`` and ``rlx meta`` both start here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rlx import config as config_lib
from rlx import meta as meta_lib
from rlx.core.types import Env
from rlx.envs import schema as env_schema
from rlx.learn import ppo
from rlx.meta import schema as meta_schema
from rlx.rewards import RewardFn, spec
from rlx.rewards import schema as reward_schema


@dataclasses.dataclass(frozen=True)
class Built:
    """A resolved config and what it builds (``meta``/``meta_hparams`` only for ``rlx meta``).

    ``config`` is resolved (every env param filled in, weights as floats), as written to a run's
    ``config.yaml``; ``env`` is wrapped (time limit, auto-reset, randomisation).
    """

    config: config_lib.Config
    env: Env
    reward_fn: RewardFn
    reward_params: Any
    agent: ppo.PPO
    hparams: ppo.Hparams
    meta: meta_lib.Meta | None = None
    meta_hparams: meta_lib.MetaHparams | None = None

    @property
    def meta_hps(self) -> meta_lib.Hps:
        """What the meta-learner's functions take: the inner and the outer hparams."""
        return meta_lib.Hps(self.hparams, self.meta_hparams)


def resolve(config: config_lib.Config) -> tuple[config_lib.Config, Env, RewardFn, Any]:
    """(resolved config, wrapped env, reward fn, reward params): every env-dependent check."""
    source = config.source
    env_config, raw = env_schema.resolve(config.env, source)
    reward = reward_schema.resolve(config.reward, config.env.name, raw, source)
    env = env_schema.wrap(raw, env_config)
    try:
        reward_fn, reward_params = spec.build(reward, env)
    except ValueError as error:
        if not str(error).startswith("reward.schedule."):
            raise
        key, _, message = str(error).partition(": ")
        raise source.error(key, message) from None
    if config.meta.learn:
        meta_schema.check_learn(config.meta, reward_params, source)
        for path in reward.schedule:
            clash = [p for p in config.meta.learn if path == p or path.startswith(f"{p}/")]
            if clash:
                raise source.error(
                    f"reward.schedule.{path}",
                    f"also learned (meta.learn: {', '.join(clash)}): a param is scheduled or "
                    "meta-learned, not both",
                )
    resolved = dataclasses.replace(config, env=env_config, reward=reward)
    return config_lib.with_source(resolved, source), env, reward_fn, reward_params


# Where each of PPO's static settings comes from: its config key. ``PPO_STATIC_NOT_CONFIGURED``
# are set by the build (total_iterations: the run's) or left at their default (guard: off only
# in a benchmark). tests/test_config.py checks that these cover every field.
PPO_STATIC_KEYS = {
    "num_envs": "train.num_envs",
    "unroll_length": "train.unroll_length",
    "num_minibatches": "train.num_minibatches",
    "num_epochs": "train.num_epochs",
    "anneal_learning_rate": "train.anneal_learning_rate",
    "normalize_observations": "train.normalize_observations",
    "normalize_advantages": "train.normalize_advantages",
    "gradient_clip": "train.gradient_clip",
    "clip_value_loss": "train.clip_value_loss",
    "policy_hidden": "network.policy_hidden",
    "value_hidden": "network.value_hidden",
    "activation": "network.activation",
    "init_log_std": "network.init_log_std",
    "kernel_init": "network.kernel_init",
    "memory": "network.memory",
    "memory_size": "network.memory_size",
    "num_eval_envs": "eval.num_envs",
    "deterministic_eval": "eval.deterministic",
}
PPO_STATIC_NOT_CONFIGURED = ("total_iterations", "guard")
# PPO's traced hyperparameters: each from the ppo section's field of the same name.
HPARAMS_KEYS = {
    name: f"ppo.{name}"
    for name in (
        "learning_rate",
        "entropy_cost",
        "value_cost",
        "clip_epsilon",
        "gamma",
        "gae_lambda",
        "max_grad_norm",
    )
}


def config_value(config: config_lib.Config, key: str) -> Any:
    """The value of dotted ``key`` (``section.field``) of ``config``."""
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def ppo_static(config: config_lib.Config, total_iterations: int) -> ppo.PPOStatic:
    """PPO's static settings, each from its key in ``PPO_STATIC_KEYS``."""
    values = {name: config_value(config, key) for name, key in PPO_STATIC_KEYS.items()}
    return ppo.PPOStatic(**values, total_iterations=total_iterations)


def ppo_hparams(config: config_lib.Config, reward_params: Any) -> ppo.Hparams:
    """PPO's traced hyperparameters (float32), each from its key in ``HPARAMS_KEYS``."""
    values = {name: config_value(config, key) for name, key in HPARAMS_KEYS.items()}
    return ppo.make_hparams(reward_params, **values)


def build(config: config_lib.Config, *, meta: bool = False) -> Built:
    """Resolves ``config`` and builds the learner (PPO, or with ``meta`` the meta-learner
    around it, whose learning rate anneals over all of its inner iterations)."""
    config, env, reward_fn, reward_params = resolve(config)
    iterations = config.iterations
    if meta:
        iterations = config.meta_iterations * config.meta.ppo_iterations
    agent = ppo.make_ppo(ppo_static(config, iterations), env, reward_fn)
    hparams = ppo_hparams(config, reward_params)
    built = Built(config, env, reward_fn, reward_params, agent, hparams)
    if not meta:
        return built
    static = dataclasses.replace(config.meta.static(), total_iterations=config.meta_iterations)
    learner = meta_lib.make(agent, static, hparams.reward_params)
    return dataclasses.replace(built, meta=learner, meta_hparams=config.meta.hparams())


def load(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> config_lib.Config:
    """``config.load`` then ``resolve``: the resolved config, every check done."""
    return resolve(config_lib.load(path, overrides))[0]
