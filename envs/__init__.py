"""Environments: the env protocol, wrappers and a registry of typed env configs.

``make(name, **params)`` returns the env with its time limit and auto-reset applied.
"""

from __future__ import annotations

from rlx.envs.base import Box, Discrete, Env, EnvState, observation_size
from rlx.envs.brax_adapter import BraxEnv
from rlx.envs.cartpole import CartPole
from rlx.envs.humanoid import Humanoid
from rlx.envs.pendulum import Pendulum
from rlx.envs.probes import (
    ProbeAction,
    ProbeConstant,
    ProbeContinuous,
    ProbeObserved,
    ProbeTimeLimit,
    ProbeTwoStep,
)
from rlx.envs.wrappers import EpisodeWrapper, VmapWrapper

# name -> env class; the class is also the env's typed config (a frozen dataclass).
REGISTRY: dict[str, type] = {
    "cartpole": CartPole,
    "pendulum": Pendulum,
    "humanoid": Humanoid,
    "probe/constant": ProbeConstant,
    "probe/observed": ProbeObserved,
    "probe/two_step": ProbeTwoStep,
    "probe/action": ProbeAction,
    "probe/continuous": ProbeContinuous,
    "probe/time_limit": ProbeTimeLimit,
}


class UnknownEnvError(KeyError):
    pass


BRAX_PREFIX = "brax:"


def env_class(name: str) -> type:
    """The typed config class of env ``name`` (``brax:<name>`` for any Brax env)."""
    if name.startswith(BRAX_PREFIX):
        return BraxEnv
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownEnvError(
            f"unknown env {name!r} (registered: {', '.join(sorted(REGISTRY))}, "
            f"or {BRAX_PREFIX}<brax env name>)"
        ) from None


def make_raw(name: str, **params) -> Env:
    """The env ``name`` from its typed config, without time limit or auto-reset."""
    if name.startswith(BRAX_PREFIX):
        params = {**params, "brax_name": name.removeprefix(BRAX_PREFIX)}
    return env_class(name)(**params)


def make(name: str, *, reset_mode: str = "fresh", **params) -> EpisodeWrapper:
    """The env ``name`` built from its typed config, with time limit and auto-reset.

    ``reset_mode``: ``'fresh'`` (a real reset per episode) or ``'cached'`` (Brax's behaviour:
    back to each env's first state); see ``EpisodeWrapper``.
    """
    return EpisodeWrapper(make_raw(name, **params), reset_mode=reset_mode)


def register(name: str, env_cls: type) -> None:
    """Adds an env class (a frozen dataclass implementing ``Env``) under ``name``."""
    if name in REGISTRY:
        raise ValueError(f"env {name!r} is already registered")
    REGISTRY[name] = env_cls


__all__ = [
    "REGISTRY",
    "Box",
    "BraxEnv",
    "CartPole",
    "Discrete",
    "Env",
    "EnvState",
    "EpisodeWrapper",
    "Humanoid",
    "Pendulum",
    "UnknownEnvError",
    "VmapWrapper",
    "env_class",
    "make",
    "make_raw",
    "observation_size",
    "register",
]
