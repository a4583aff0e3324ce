"""Environments: the env protocol, wrappers and a registry of typed env configs.

``make(name, **params)`` returns the env with its time limit and auto-reset applied.
"""

from __future__ import annotations

from rlx.core.types import Box, Discrete, Env, EnvState, observation_size
from rlx.envs.brax_adapter import BraxEnv
from rlx.envs.cartpole import CartPole
from rlx.envs.gridworld import GridWorld
from rlx.envs.humanoid import Humanoid
from rlx.envs.humanoid_tasks import HumanoidRun, HumanoidStand, HumanoidWalk
from rlx.envs.joystick import AntJoystick
from rlx.envs.lift import Lift
from rlx.envs.pendulum import Pendulum
from rlx.envs.playground_adapter import PlaygroundEnv
from rlx.envs.probes import (
    ProbeAction,
    ProbeConstant,
    ProbeContinuous,
    ProbeLure,
    ProbeObserved,
    ProbeTimeLimit,
    ProbeTwoStep,
)
from rlx.envs.push import Push
from rlx.envs.randomize import DomainRandomization, NotRandomizableError
from rlx.envs.reach import Reach
from rlx.envs.sim2real import SimToReal
from rlx.envs.user import UserEnvError, is_user_env, load_class
from rlx.envs.wrappers import EpisodeWrapper, VmapWrapper

# name -> env class; the class is also the env's typed config (a frozen dataclass).
REGISTRY: dict[str, type] = {
    "cartpole": CartPole,
    "gridworld": GridWorld,
    "pendulum": Pendulum,
    "humanoid": Humanoid,
    "humanoid_stand": HumanoidStand,
    "humanoid_walk": HumanoidWalk,
    "humanoid_run": HumanoidRun,
    "reach": Reach,
    "push": Push,
    "lift": Lift,
    "ant_joystick": AntJoystick,
    "probe/constant": ProbeConstant,
    "probe/observed": ProbeObserved,
    "probe/two_step": ProbeTwoStep,
    "probe/action": ProbeAction,
    "probe/continuous": ProbeContinuous,
    "probe/time_limit": ProbeTimeLimit,
    "probe/lure": ProbeLure,
}


class UnknownEnvError(KeyError):
    pass


BRAX_PREFIX = "brax:"
PLAYGROUND_PREFIX = "playground:"


def env_class(name: str) -> type:
    """The typed config class of env ``name`` (``brax:<name>`` for any Brax env,
    ``playground:<Name>`` for a MuJoCo Playground env, ``path/to/file.py:ClassName`` for a
    user's env: ``UserEnvError`` when that file cannot give one)."""
    if is_user_env(name):
        return load_class(name)
    if name.startswith(BRAX_PREFIX):
        return BraxEnv
    if name.startswith(PLAYGROUND_PREFIX):
        return PlaygroundEnv
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownEnvError(
            f"unknown env {name!r} (registered: {', '.join(sorted(REGISTRY))}, "
            f"or {BRAX_PREFIX}<brax env name>, or {PLAYGROUND_PREFIX}<Playground env name>, or "
            "path/to/file.py:ClassName for your own)"
        ) from None


def make_raw(name: str, **params) -> Env:
    """The env ``name`` from its typed config, without time limit or auto-reset."""
    if name.startswith(BRAX_PREFIX):
        params = {**params, "brax_name": name.removeprefix(BRAX_PREFIX)}
    if name.startswith(PLAYGROUND_PREFIX):
        params = {**params, "playground_name": name.removeprefix(PLAYGROUND_PREFIX)}
    return env_class(name)(**params)


def make(
    name: str, *, reset_mode: str = "fresh", randomize: dict | None = None, **params
) -> EpisodeWrapper:
    """The env ``name`` built from its typed config, with time limit and auto-reset.

    ``reset_mode``: ``'fresh'`` (a real reset per episode) or ``'cached'`` (Brax's behaviour:
    back to each env's first state); see ``EpisodeWrapper``. ``randomize``: ranges of
    ``DomainRandomization`` (``mass``, ``friction``, ``actuator_gain``: (low, high) scales).
    """
    return wrap(make_raw(name, **params), reset_mode=reset_mode, randomize=randomize)


def wrap(
    raw: Env,
    *,
    reset_mode: str = "fresh",
    randomize: dict | None = None,
    sim2real: dict | None = None,
) -> EpisodeWrapper:
    """A raw env with domain randomisation (when ``randomize`` names ranges), sim-to-real
    noise, latency and pushes (``SimToReal``'s settings, when ``sim2real`` gives any), time
    limit and auto-reset (see ``make``)."""
    env = raw
    if randomize:
        env = DomainRandomization(env, **{k: tuple(v) for k, v in randomize.items()})
    if sim2real:
        env = SimToReal(env, **sim2real)
    return EpisodeWrapper(env, reset_mode=reset_mode)


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
    "DomainRandomization",
    "Env",
    "EnvState",
    "EpisodeWrapper",
    "GridWorld",
    "Humanoid",
    "NotRandomizableError",
    "HumanoidRun",
    "HumanoidStand",
    "HumanoidWalk",
    "Lift",
    "Pendulum",
    "PlaygroundEnv",
    "Push",
    "Reach",
    "UnknownEnvError",
    "UserEnvError",
    "VmapWrapper",
    "env_class",
    "make",
    "make_raw",
    "observation_size",
    "register",
    "wrap",
]
