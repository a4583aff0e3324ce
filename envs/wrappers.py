"""Wrappers: time limit with auto-reset (truncation kept apart from termination) and batching."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rlx.core.types import ActionSpace, Env, EnvState, actor_observation_size

RESET_MODES = ("fresh", "cached")


@dataclasses.dataclass(frozen=True)
class EpisodeWrapper:
    """Ends episodes at ``episode_length`` steps (``truncated``) and resets automatically.

    After a step that ends an episode, ``obs``/``signals``/``physics`` hold the next
    episode's first state, while ``next_obs``/``next_signals``, ``terms``, ``primary``,
    ``terminated`` and ``truncated`` still describe the ended step. A step that both
    terminates and hits the limit counts as terminated, not truncated.

    ``reset_mode``: ``'fresh'`` (default) runs a real reset for every episode, with the key the
    ended episode's state holds; the env's reset splits it and keeps a new one in the state it
    returns (the Env protocol's ``key``), so each episode gets new keys without the wrapper
    splitting any: a split of the batch's keys is a threefry kernel in the compiled step,
    hundreds of ms of compile on a CPU. ``'cached'`` returns each env to the first state it was
    reset to, as Brax's AutoResetWrapper does: no reset in the step (cheaper for MJX, where a
    reset is a forward pass), but no new initial-state noise after the first episode.
    """

    env: Env
    reset_mode: str = "fresh"

    def __post_init__(self):
        if self.reset_mode not in RESET_MODES:
            raise ValueError(f"reset_mode must be one of {RESET_MODES}, got {self.reset_mode!r}")

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def episode_length(self) -> int:
        return self.env.episode_length

    @property
    def action_space(self) -> ActionSpace:
        return self.env.action_space

    @property
    def term_names(self) -> tuple[str, ...]:
        return self.env.term_names

    @property
    def signal_names(self) -> tuple[str, ...]:
        return self.env.signal_names

    @property
    def actor_observation_size(self) -> int | None:
        return actor_observation_size(self.env)

    @property
    def observation_groups(self) -> tuple[tuple[str, int], ...] | None:
        return getattr(self.env, "observation_groups", None)

    @property
    def dt(self) -> float | None:
        """The env's control period in seconds, where it has one."""
        return getattr(self.env, "dt", None)

    def reset(self, key: jax.Array) -> EnvState:
        state = self.env.reset(key)
        if self.reset_mode == "cached":
            state = state.replace(reset_cache=(state.physics, state.obs, state.signals))
        return state

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        return self.reset_done(self.step_no_reset(state, action))

    def step_no_reset(self, state: EnvState, action: jax.Array) -> EnvState:
        """The env's step with the time limit applied; no reset yet. With cached resets the
        key advances here, every step (the env's step may draw from it, and a cached reset
        draws nothing); with fresh ones the env's own reset gives the next key."""
        stepped = self.env.step(state, action)
        truncated = jnp.logical_and(
            stepped.step_count >= self.env.episode_length, jnp.logical_not(stepped.terminated)
        )
        stepped = stepped.replace(truncated=truncated)
        if self.reset_mode == "cached":
            stepped = stepped.replace(key=jax.random.split(stepped.key)[0])
        return stepped

    def reset_done(self, stepped: EnvState) -> EnvState:
        """Replaces the current state by the next episode's first state where ``done``."""
        done = stepped.done

        def pick(new, old):
            return jnp.where(done, new, old)

        key = stepped.key
        if self.reset_mode == "cached":
            physics, obs, signals = stepped.reset_cache
        else:
            fresh = self.env.reset(stepped.key)
            physics, obs, signals = fresh.physics, fresh.obs, fresh.signals
            key = pick(fresh.key, stepped.key)
        return stepped.replace(
            physics=jax.tree.map(pick, physics, stepped.physics),
            obs=pick(obs, stepped.obs),
            signals=jax.tree.map(pick, signals, stepped.signals),
            step_count=jnp.where(done, 0, stepped.step_count),
            key=key,
        )


@dataclasses.dataclass(frozen=True)
class VmapWrapper:
    """Batches an env: ``reset(keys [B])`` and ``step(state [B], action [B, ...])``."""

    env: Env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, keys: jax.Array) -> EnvState:
        return jax.vmap(self.env.reset)(keys)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """The batch's step; with a mesh of several devices set while tracing (``jax.set_mesh``:
        a single learner's program whose env batch is split over them, ``rlx.run.driver``),
        each device steps its own shard of envs and resets its own ended episodes, so no env
        step waits on the other devices."""
        if not isinstance(self.env, EpisodeWrapper):
            return jax.vmap(self.env.step)(state, action)
        mesh = jax.sharding.get_abstract_mesh()
        if mesh.empty or mesh.size == 1:
            return self._step_and_reset(state, action)
        split = jax.sharding.PartitionSpec(mesh.axis_names)
        local = jax.shard_map(self._step_and_reset, in_specs=split, out_specs=split)
        return local(state, action)

    def _step_and_reset(self, state: EnvState, action: jax.Array) -> EnvState:
        # Reset only in steps where some env's episode ended: a reset can cost as much as a
        # physics step (MJX), and with long episodes most steps need none. The reset changes
        # only the envs that are done, so results do not depend on which branch runs (nor on
        # how many devices share the batch: each tests its own shard).
        stepped = jax.vmap(self.env.step_no_reset)(state, action)
        return jax.lax.cond(
            jnp.any(stepped.done), jax.vmap(self.env.reset_done), lambda s: s, stepped
        )
