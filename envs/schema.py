"""The ``env`` section of a config: its schema, and its resolution against the env registry.

``EnvConfig.params`` is the env's own typed config (the fields of its dataclass, see
``rlx.envs.REGISTRY``); ``resolve`` checks them strictly and fills in the env's defaults, and
builds the raw env once; ``wrap`` adds domain randomisation, the time limit and auto-reset.
"""

from __future__ import annotations

import dataclasses
import math

from rlx import envs as registry
from rlx.core import schema, usercode
from rlx.core.schema import field, one_of
from rlx.core.types import Env
from rlx.envs import user
from rlx.envs.mjx_base import ImplUnavailableError
from rlx.envs.randomize import DomainRandomization, NotRandomizableError, range_problem
from rlx.envs.sim2real import SimToReal
from rlx.envs.wrappers import EpisodeWrapper

RESET_MODES = ("fresh", "cached")
# The adapters' env-name params, set from ``env.name`` (``brax:<name>``), never by the user.
_ADAPTER_NAMES = {
    "brax_name": ("Brax", "brax:<name>"),
    "playground_name": ("Playground", "playground:<Name>"),
}


@dataclasses.dataclass(frozen=True)
class RandomizeConfig:
    """Domain randomisation of MJX envs: (low, high) scale ranges, drawn per env and episode."""

    mass: tuple[float, ...] = field((1.0, 1.0), doc="body masses and inertias")
    friction: tuple[float, ...] = field((1.0, 1.0), doc="sliding friction of every geom")
    actuator_gain: tuple[float, ...] = field((1.0, 1.0), doc="actuator gains (and biases)")

    def problems(self):
        for name, bounds in dataclasses.asdict(self).items():
            problem = range_problem(bounds)
            if problem is not None:
                yield name, problem


@dataclasses.dataclass(frozen=True)
class SimToRealConfig:
    """What a real robot adds, per env, in the compiled step (``rlx.envs.sim2real``); every
    setting's default is off."""

    obs_noise: dict[str, float] = field(
        {}, doc="observation group -> scale: uniform noise in [-scale, scale] per entry and step"
    )
    action_delay: tuple[int, ...] = field(
        (0, 0), doc="[low, high] steps: the env applies the action of k steps ago, k per episode"
    )
    motor_strength: tuple[float, ...] = field(
        (1.0, 1.0), doc="[low, high]: continuous actions scaled by a factor per env and episode"
    )
    push_interval: tuple[int, ...] = field(
        (0, 0), doc="[low, high] steps between kicks to the root's planar velocity (0: none)"
    )
    push_velocity: float = field(0.0, doc="the largest kick per axis, m/s")

    def problems(self):
        for name, scale in self.obs_noise.items():
            try:
                value = float(scale)  # PyYAML reads 1e-2 as a string
            except (TypeError, ValueError):
                value = float("nan")
            if isinstance(scale, bool) or not math.isfinite(value) or value < 0:
                yield f"obs_noise.{name}", f"expected a finite scale >= 0, got {scale!r}"
        for name, least in (("action_delay", 0), ("push_interval", 1)):
            bounds = getattr(self, name)
            integral = all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
            off = name == "push_interval" and tuple(bounds) == (0, 0)
            if len(bounds) != 2 or not integral or not (off or least <= bounds[0] <= bounds[1]):
                yield (
                    name,
                    (
                        f"expected [low, high] steps with {least} <= low <= high"
                        + (" ([0, 0]: no pushes)" if least else "")
                        + f", got {list(bounds)}"
                    ),
                )
        problem = range_problem(self.motor_strength)
        if problem is not None:
            yield "motor_strength", problem
        if self.push_velocity < 0:
            yield "push_velocity", f"expected >= 0, got {self.push_velocity}"
        elif (self.push_velocity > 0) != (tuple(self.push_interval)[-1:] > (0,)):
            yield (
                ("push_interval", "push_velocity"),
                "a push needs both: push_interval [low, high] with high > 0 and push_velocity > 0",
            )

    def settings(self) -> dict | None:
        """``SimToReal``'s keyword arguments, None when every setting is off (a zero noise
        scale is off too: the wrapper is left out and the program is the plain env's)."""
        noise = tuple(sorted((k, float(v)) for k, v in self.obs_noise.items() if float(v) > 0))
        if dataclasses.replace(self, obs_noise=dict(noise)) == SimToRealConfig():
            return None
        out = dataclasses.asdict(self)
        out["obs_noise"] = noise
        for name in ("action_delay", "motor_strength", "push_interval"):
            out[name] = tuple(out[name])
        return out


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    name: str = field("cartpole", doc="registered env name")
    reset_mode: str = field(
        "fresh",
        one_of(RESET_MODES),
        "fresh: a real reset per episode; cached: back to each env's first state (as Brax)",
    )
    params: dict = field({}, doc="the env's typed config (its dataclass fields)")
    file_sha256: str = field(
        "", doc="filled in when resolved for a user env's file: its hash, checked on resume"
    )
    randomize: RandomizeConfig = schema.section(RandomizeConfig)
    sim2real: SimToRealConfig = schema.section(SimToRealConfig)

    def randomization(self) -> dict | None:
        """Ranges for ``DomainRandomization``, None when nothing is randomised."""
        ranges = dataclasses.asdict(self.randomize)
        return ranges if any(tuple(r) != (1.0, 1.0) for r in ranges.values()) else None


def resolve(config: EnvConfig, source: schema.Source) -> tuple[EnvConfig, Env]:
    """(the section with every env param filled in, the raw env built from it); errors name
    the key under ``env.``."""
    config = _resolve_user_env(config, source)
    try:
        cls = registry.env_class(config.name)
    except registry.UnknownEnvError as error:
        raise source.error("env.name", str(error.args[0])) from None
    except registry.UserEnvError as error:
        raise source.error("env.name", str(error)) from None
    for hidden, (kind, where) in _ADAPTER_NAMES.items():
        if hidden in config.params:
            raise source.error(f"env.params.{hidden}", f"set the {kind} env in env.name: {where}")
    try:
        typed = schema.from_dict(cls, config.params, source, "env.params")
    except ImplUnavailableError as error:
        raise source.error("env.params.impl", str(error)) from None
    except schema.ConfigError:
        raise
    except ValueError as error:  # the env's own check of its params (its __post_init__)
        raise source.error("env.params", str(error)) from None
    except ImportError as error:  # an optional env library (brax, playground) is missing
        raise source.error("env.name", str(error)) from None
    params = {k: v for k, v in dataclasses.asdict(typed).items() if k not in _ADAPTER_NAMES}
    if params.get("episode_length", 1) < 1:  # the time limit every env has
        raise source.error(
            "env.params.episode_length", f"must be >= 1, got {params['episode_length']!r}"
        )
    try:
        env = registry.make_raw(config.name, **params)
    except ImplUnavailableError as error:
        raise source.error("env.params.impl", str(error)) from None
    except (ValueError, ImportError) as error:
        raise source.error("env.name", str(error)) from None
    if registry.is_user_env(config.name):
        try:
            user.check(env, config.name)
        except registry.UserEnvError as error:
            raise source.error("env.name", str(error)) from None
    settings = config.sim2real.settings()
    if settings and config.reset_mode == "cached":
        raise source.error(
            ("env.sim2real", "env.reset_mode"),
            "sim-to-real draws (delay, strength, pushes, noise) are per episode: they need "
            "env.reset_mode: fresh (a cached reset would replay each env's first draws)",
        )
    if settings:
        try:
            SimToReal(env, **settings)
        except (ValueError, TypeError) as error:
            raise source.error("env.sim2real", str(error)) from None
    ranges = config.randomization()
    if ranges:
        try:
            DomainRandomization(env, **ranges)
        except NotRandomizableError as error:
            raise source.error("env.randomize", str(error)) from None
    return dataclasses.replace(config, params=params), env


def _resolve_user_env(config: EnvConfig, source: schema.Source) -> EnvConfig:
    """A user env's ``env.name`` with its file's absolute path (next to the config file, else
    from the working directory) and ``file_sha256`` filled in; a file changed since the run
    started is an error."""
    if not registry.is_user_env(config.name):
        if config.file_sha256:
            raise source.error("env.file_sha256", "only for a user env (path/to/file.py:Class)")
        return config
    text, class_name = user.split(config.name)
    path = usercode.find(text, source.file)
    if not path.is_file():
        raise source.error("env.name", f"no such file {path}")
    digest = usercode.sha256(path)
    if config.file_sha256 and config.file_sha256 != digest:
        raise source.error(
            "env.name",
            f"{path} changed since the run started (sha256 {config.file_sha256[:12]} then, "
            f"{digest[:12]} now): restore it, or start a new run",
        )
    return dataclasses.replace(config, name=f"{path}:{class_name}", file_sha256=digest)


def wrap(raw: Env, config: EnvConfig) -> EpisodeWrapper:
    """``raw`` with the section's domain randomisation, time limit and auto-reset."""
    return registry.wrap(
        raw,
        reset_mode=config.reset_mode,
        randomize=config.randomization(),
        sim2real=config.sim2real.settings(),
    )
