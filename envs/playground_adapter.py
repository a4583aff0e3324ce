"""``playground:<Name>``: a MuJoCo Playground env behind the rlx env protocol.

Playground (PyPI ``playground`` 0.2.x, the JAX line) returns one reward and reports how it is
made in ``state.metrics['reward/<name>']``. The dm_control suite tasks build it in one of two
ways, and the adapter's terms follow (the tables below, read from the playground 0.2.0 sources):

- a weighted sum (``FishSwim``, ``WalkerStand``): the terms are the parts, scaled as Playground
  scales them inside its sum, plus ``residual`` = reward minus the parts (round-off only);
- a product (cartpole, hopper, humanoid stand/walk/run, point mass): the terms are the factors,
  whose product is the reward exactly (``reward.combine: product`` reproduces it), plus
  ``residual`` = reward minus the factors' *sum*, so unit weights on every term reproduce the
  reward as well (the residual then holds the product's interaction);
- otherwise the single term ``reward``, Playground's reward.

In every case unit weights on all terms reproduce Playground's reward exactly. Primary:
Playground's reward (a dm_control task's reward is its objective). Signals: the other scalar
metrics (``reward/`` dropped from the name), as Playground reports them: zero at a reset.

Time limits: Playground envs never end an episode on time (its ``episode_length`` is read by its
training wrappers, which rlx does not use); rlx's ``EpisodeWrapper`` truncates at this config's
``episode_length``. Playground's ``done`` (NaN physics, for the dm_control suite) is
``terminated``. Envs that need MuJoCo Menagerie assets (locomotion, manipulation) load only where
Menagerie is already installed: they never start a download here. Note: Playground's
``SwimmerSwimmer6`` sets ``jax_default_matmul_precision='highest'`` for the whole process when
it is built.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import Box, EnvState
from rlx.envs.adapters import first_state, next_state, split_reward
from rlx.envs.scene import data_fields

INSTALL = (
    "playground:<Name> envs need MuJoCo Playground 0.2 (PyPI 'playground'): "
    "pip install -c constraints.txt '.[playground]', or, without its GPU-only warp-lang and "
    "mediapy: pip install -c constraints.txt --no-deps playground lxml tqdm"
)

_CARTPOLE_DENSE = ("upright", "centered", "small_control", "small_velocity")
_CARTPOLE_SPARSE = ("cart_in_bounds", "angle_in_bounds")
# Env -> {metric: scale}: rewards that are a weighted sum of their reported parts.
REWARD_PARTS: dict[str, dict[str, float]] = {
    "FishSwim": {"in_target": 7 / 8, "upright": 1 / 8},
    "WalkerStand": {"standing": 3 / 4, "upright": 1 / 4},
}
# Env -> metrics whose product is the reward. (WalkerWalk/Run: stand * (5 move + 1) / 6, not a
# product of metrics, so they get the single term ``reward``.)
REWARD_FACTORS: dict[str, tuple[str, ...]] = {
    "CartpoleBalance": _CARTPOLE_DENSE,
    "CartpoleSwingup": _CARTPOLE_DENSE,
    "CartpoleBalanceSparse": _CARTPOLE_SPARSE,
    "CartpoleSwingupSparse": _CARTPOLE_SPARSE,
    "HopperHop": ("standing", "hopping"),
    "HopperStand": ("standing", "small_control"),
    "HumanoidStand": ("stand", "move", "small_control"),
    "HumanoidWalk": ("stand", "move", "small_control"),
    "HumanoidRun": ("stand", "move", "small_control"),
    "PointMass": ("near_target", "small_control"),
}
# Metrics a task reports but never sets (always 0), or that copy its reward: not signals.
_NOT_SIGNALS: dict[str, tuple[str, ...]] = {
    "CartpoleBalance": _CARTPOLE_SPARSE,
    "CartpoleSwingup": _CARTPOLE_SPARSE,
    "CartpoleBalanceSparse": _CARTPOLE_DENSE,
    "CartpoleSwingupSparse": _CARTPOLE_DENSE,
    "WalkerStand": ("stand", "move"),
}
IMPLS = ("jax", "warp")


class PlaygroundUnavailableError(ImportError):
    pass


class AssetsUnavailableError(ValueError):
    """The env needs MuJoCo Menagerie, which is not installed (and is not downloaded)."""


@functools.cache
def _playground():
    """(registry, dm_control_suite names, Menagerie-based names, Menagerie path)."""
    try:
        from mujoco_playground import dm_control_suite, locomotion, manipulation, registry
        from mujoco_playground._src import mjx_env
    except ImportError as error:  # playground is an optional dependency
        raise PlaygroundUnavailableError(INSTALL) from error
    menagerie = tuple(locomotion.ALL_ENVS) + tuple(manipulation.ALL_ENVS)
    return registry, tuple(dm_control_suite.ALL_ENVS), menagerie, mjx_env.MENAGERIE_PATH


def offline_envs() -> tuple[str, ...]:
    """The Playground envs that load here: the dm_control suite (its XMLs ship inside the
    package), plus the locomotion and manipulation envs where Menagerie is installed."""
    _, suite, menagerie, menagerie_path = _playground()
    return suite + (menagerie if menagerie_path.exists() else ())


@functools.cache
def _load(playground_name: str, impl: str, episode_length: int):
    registry = _playground()[0]
    overrides = {"impl": impl, "episode_length": episode_length}
    try:
        return registry.load(playground_name, config_overrides=overrides)
    except RuntimeError as error:  # mjx: "warp-lang is not installed ..."
        raise ValueError(f"playground:{playground_name} with impl={impl!r}: {error}") from None


@functools.cache
def _metric_names(playground_name: str, impl: str, episode_length: int) -> tuple[str, ...]:
    """The scalar metrics of a step (shapes only); rejects dict observations."""
    env = _load(playground_name, impl, episode_length)
    reset = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    if isinstance(reset.obs, Mapping):
        raise ValueError(
            f"playground:{playground_name} returns dict observations "
            f"({', '.join(reset.obs)}); rlx envs need one array observation"
        )
    state = jax.eval_shape(env.step, reset, jnp.zeros(env.action_size))
    return tuple(sorted(k for k, v in state.metrics.items() if v.shape == ()))


def _short(metric: str) -> str:
    return metric.removeprefix("reward/")


@dataclasses.dataclass(frozen=True)
class PlaygroundEnv:
    """A MuJoCo Playground env by name. ``impl``: MJX implementation, ``jax`` (any device) or
    ``warp`` (GPU, needs warp-lang); ``episode_length``: rlx's time limit (Playground's is the
    same by default)."""

    playground_name: str = "CartpoleBalance"
    # ``check`` metadata: config loading names the key of a bad value (rlx.config.from_dict).
    episode_length: int = dataclasses.field(
        default=1000, metadata={"check": (lambda v: v > 0, "must be > 0")}
    )
    impl: str = dataclasses.field(
        default="jax", metadata={"check": (lambda v: v in IMPLS, f"must be one of {IMPLS}")}
    )

    def __post_init__(self):
        if self.episode_length <= 0:
            raise ValueError(f"episode_length must be > 0, got {self.episode_length}")
        if self.impl not in IMPLS:
            raise ValueError(f"unknown MJX impl {self.impl!r} (one of {IMPLS})")
        _, suite, menagerie, menagerie_path = _playground()
        if self.playground_name in menagerie and not menagerie_path.exists():
            raise AssetsUnavailableError(
                f"playground:{self.playground_name} needs MuJoCo Menagerie assets, which are "
                f"not installed at {menagerie_path}; rlx never downloads them (Playground "
                "would git-clone github.com/google-deepmind/mujoco_menagerie there). "
                f"Envs that load offline: {', '.join(offline_envs())}"
            )
        if self.playground_name not in suite + menagerie:
            offline = offline_envs()
            more = len(suite + menagerie) - len(offline)
            needing = f"; {more} more need MuJoCo Menagerie assets, not installed" if more else ""
            raise ValueError(
                f"unknown Playground env {self.playground_name!r} "
                f"(offline: {', '.join(offline)}{needing})"
            )
        _load(self.playground_name, self.impl, self.episode_length)  # outside any trace

    @property
    def name(self) -> str:
        return f"playground:{self.playground_name}"

    @property
    def playground(self):
        """The Playground ``MjxEnv`` this env steps."""
        return _load(self.playground_name, self.impl, self.episode_length)

    render_camera: ClassVar[str | None] = None  # the renderer's camera, following the body

    def render_model(self):
        """Playground's own ``mujoco.MjModel`` (its floor, sky and cameras; rlx.envs.scene)."""
        return self.playground.mj_model

    def render_state(self, physics) -> dict:
        return data_fields(physics.data)

    @property
    def action_space(self) -> Box:
        return Box(size=self.playground.action_size, low=-1.0, high=1.0)

    @property
    def reward_parts(self) -> dict[str, float]:
        """Metric (without ``reward/``) -> scale of the parts or factors the terms expose."""
        factors = REWARD_FACTORS.get(self.playground_name, ())
        return REWARD_PARTS.get(self.playground_name, dict.fromkeys(factors, 1.0))

    @property
    def term_names(self) -> tuple[str, ...]:
        parts = self.reward_parts
        return (*parts, "residual") if parts else ("reward",)

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(_short(m) for m in self._signal_metrics)

    @property
    def _signal_metrics(self) -> tuple[str, ...]:
        metrics = _metric_names(self.playground_name, self.impl, self.episode_length)
        skip = {*self.reward_parts, *_NOT_SIGNALS.get(self.playground_name, ())}
        return tuple(m for m in metrics if _short(m) not in skip)

    def _signals(self, pg_state) -> dict[str, jax.Array]:
        return {
            _short(m): jnp.asarray(pg_state.metrics[m], jnp.float32) for m in self._signal_metrics
        }

    def reset(self, key: jax.Array) -> EnvState:
        return first_state(
            self.playground.reset, key, signals=self._signals, term_names=self.term_names
        )

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        # Playground writes this step's metrics into the dict it is given: pass a copy, so the
        # caller's state is left as it was.
        physics = state.physics.replace(metrics=dict(state.physics.metrics))
        pg_state = self.playground.step(physics, action)
        parts = self.reward_parts
        if parts:
            terms = split_reward(pg_state.reward, pg_state.metrics, parts, prefix="reward/")
        else:
            terms = {"reward": pg_state.reward}
        return next_state(
            state,
            pg_state,
            signals=self._signals(pg_state),
            terms=terms,
            primary=pg_state.reward,
        )
