"""Environments: the env protocol, wrappers and a registry of typed env configs.

``make(name, **params)`` returns the env with its time limit and auto-reset applied.
"""

from __future__ import annotations

from rlx.envs.base import Box, Discrete, Env, EnvState, observation_size
from rlx.envs.cartpole import CartPole
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
    "probe/constant": ProbeConstant,
    "probe/observed": ProbeObserved,
    "probe/two_step": ProbeTwoStep,
    "probe/action": ProbeAction,
    "probe/continuous": ProbeContinuous,
    "probe/time_limit": ProbeTimeLimit,
}


class UnknownEnvError(KeyError):
    pass


def env_class(name: str) -> type:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownEnvError(
            f"unknown env {name!r} (registered: {', '.join(sorted(REGISTRY))})"
        ) from None


def make(name: str, **params) -> EpisodeWrapper:
    """The env ``name`` built from its typed config, with time limit and auto-reset."""
    return EpisodeWrapper(env_class(name)(**params))


def register(name: str, env_cls: type) -> None:
    """Adds an env class (a frozen dataclass implementing ``Env``) under ``name``."""
    if name in REGISTRY:
        raise ValueError(f"env {name!r} is already registered")
    REGISTRY[name] = env_cls


__all__ = [
    "REGISTRY",
    "Box",
    "CartPole",
    "Discrete",
    "Env",
    "EnvState",
    "EpisodeWrapper",
    "Pendulum",
    "UnknownEnvError",
    "VmapWrapper",
    "env_class",
    "make",
    "observation_size",
    "register",
]
