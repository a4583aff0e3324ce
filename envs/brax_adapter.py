"""``brax:<name>``: any Brax env behind the rlx env protocol, its reward split into terms.

Brax envs return one summed reward and report its parts in ``state.metrics``. The adapter
exposes those parts as terms (scaled as Brax scales them inside its sum) plus a ``residual``
term, reward minus the parts, so that unit weights on every term reproduce Brax's reward
exactly. Primary: forward (x) velocity for the locomotion envs, Brax's reward otherwise.
Signals: Brax's non-reward metrics and ``torso_height`` (z of the first body).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import Box, EnvState
from rlx.envs.adapters import first_state, next_state, split_reward
from rlx.envs.scene import RenderError, data_fields

# Brax env -> {metric: scale}: the parts Brax sums into its reward (Brax 0.14 sources).
REWARD_PARTS: dict[str, dict[str, float]] = {
    "ant": {
        "reward_forward": 1.0,
        "reward_survive": 1.0,
        "reward_ctrl": 1.0,
        "reward_contact": 1.0,
    },
    "halfcheetah": {"reward_run": 1.0, "reward_ctrl": 1.0},
    "hopper": {"reward_forward": 1.0, "reward_healthy": 1.0, "reward_ctrl": 1.0},
    "humanoid": {"reward_linvel": 1.0, "reward_alive": 1.0, "reward_quadctrl": 1.0},
    "humanoidstandup": {"reward_linup": 1.0, "reward_quadctrl": 1.0},
    "pusher": {"reward_dist": 1.0, "reward_ctrl": 0.1, "reward_near": 0.5},
    "reacher": {"reward_dist": 1.0, "reward_ctrl": 1.0},
    "swimmer": {"reward_fwd": 1.0, "reward_ctrl": 1.0},
    "walker2d": {"reward_forward": 1.0, "reward_healthy": 1.0, "reward_ctrl": 1.0},
}
LOCOMOTION = ("ant", "halfcheetah", "hopper", "humanoid", "swimmer", "walker2d")
# A locomotion env's term proportional to its x velocity, the primary (rlx tune's anchor).
PRIMARY_TERMS = {
    "ant": "reward_forward",
    "halfcheetah": "reward_run",
    "hopper": "reward_forward",
    "humanoid": "reward_linvel",
    "swimmer": "reward_fwd",
    "walker2d": "reward_forward",
}
# Metrics that duplicate a reward part and would only add noise as signals.
_DUPLICATES = {"forward_reward"}


class BraxUnavailableError(ImportError):
    pass


BACKENDS = ("mjx", "generalized", "positional", "spring")


def _brax_envs():
    try:
        from brax import envs as brax_envs
    except ImportError as error:  # brax is an optional dependency
        raise BraxUnavailableError(
            "brax:<name> envs need brax: pip install -c constraints.txt '.[mjx]'"
        ) from error
    return brax_envs


@functools.cache
def _brax_env(brax_name: str, backend: str):
    return _brax_envs().get_environment(brax_name, backend=backend)


@functools.cache
def _metric_names(brax_name: str, backend: str) -> tuple[str, ...]:
    env = _brax_env(brax_name, backend)
    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    return tuple(sorted(k for k, v in state.metrics.items() if v.shape == ()))


@dataclasses.dataclass(frozen=True)
class BraxEnv:
    """A Brax env by name. ``backend``: mjx, generalized, positional or spring. ``impl``: MJX's
    implementation, ``jax`` only: Brax builds its ``mjx.Model`` itself (``brax.io.mjcf``, with
    MJX's default), so MuJoCo Warp is not reachable through it (a one-line error says so; rlx's
    MJX envs and ``playground:`` envs take ``impl: warp``)."""

    brax_name: str = "inverted_pendulum"
    backend: str = "mjx"
    episode_length: int = 1000
    impl: str = "jax"

    def __post_init__(self):
        known = _brax_envs()._envs
        if self.brax_name not in known:
            raise ValueError(
                f"unknown Brax env {self.brax_name!r} (Brax has: {', '.join(sorted(known))})"
            )
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown Brax backend {self.backend!r} (one of {BACKENDS})")
        if self.impl != "jax":
            from rlx.envs.mjx_base import ImplUnavailableError

            raise ImplUnavailableError(
                f"impl {self.impl!r}: brax: envs run MJX's JAX implementation only (Brax 0.14 "
                "builds its mjx.Model itself); for MuJoCo Warp use rlx's MJX envs or a "
                "playground: env, for MuJoCo's C engine (impl c) rlx's MJX envs"
            )

    @property
    def name(self) -> str:
        return f"brax:{self.brax_name}"

    @property
    def brax(self):
        return _brax_env(self.brax_name, self.backend)

    @property
    def action_space(self) -> Box:
        return Box(size=self.brax.action_size, low=-1.0, high=1.0)

    @property
    def reward_parts(self) -> dict[str, float]:
        return REWARD_PARTS.get(self.brax_name, {})

    @property
    def term_names(self) -> tuple[str, ...]:
        return (*self.reward_parts, "residual")

    @property
    def primary_term(self) -> str | None:
        """The term that is the forward velocity (the primary) of a locomotion env."""
        return PRIMARY_TERMS.get(self.brax_name)

    @property
    def signal_names(self) -> tuple[str, ...]:
        metrics = _metric_names(self.brax_name, self.backend)
        skip = set(self.reward_parts) | _DUPLICATES
        return (*(m for m in metrics if m not in skip), "torso_height")

    render_camera: ClassVar[str | None] = None  # the renderer's camera, following the body

    def render_model(self):
        """Brax's own ``mujoco.MjModel`` (the mjx backend only; rlx.envs.scene)."""
        if self.backend != "mjx":
            raise RenderError(
                f"env {self.name!r} on the {self.backend} backend has no renderer: use "
                "env.params.backend: mjx"
            )
        return self.brax.sys.mj_model

    def render_state(self, physics) -> dict:
        return data_fields(physics.pipeline_state)  # the mjx backend's state is an mjx.Data

    def _signals(self, brax_state) -> dict[str, jax.Array]:
        signals = {k: brax_state.metrics[k] for k in self.signal_names if k != "torso_height"}
        signals["torso_height"] = brax_state.pipeline_state.x.pos[0, 2]
        return {k: jnp.asarray(v, jnp.float32) for k, v in signals.items()}

    def reset(self, key: jax.Array) -> EnvState:
        return first_state(self.brax.reset, key, signals=self._signals, term_names=self.term_names)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        brax_state = self.brax.step(state.physics, action)
        if self.brax_name in LOCOMOTION and "x_velocity" in brax_state.metrics:
            primary = brax_state.metrics["x_velocity"]
        else:
            primary = brax_state.reward
        return next_state(
            state,
            brax_state,
            signals=self._signals(brax_state),
            terms=split_reward(brax_state.reward, brax_state.metrics, self.reward_parts),
            primary=primary,
        )
