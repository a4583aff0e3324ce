"""Wrappers: time limit with auto-reset (truncation kept apart from termination) and batching."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rlx.envs.base import ActionSpace, Env, EnvState


@dataclasses.dataclass(frozen=True)
class EpisodeWrapper:
    """Ends episodes at ``episode_length`` steps (``truncated``) and resets automatically.

    After a step that ends an episode, ``obs``/``obs_signals``/``physics`` hold a *fresh* reset
    (a real reset with a new key, not a cached first state), while ``next_obs``/``signals``,
    ``terms``, ``primary``, ``terminated`` and ``truncated`` still describe the ended step.
    A step that both terminates and hits the limit counts as terminated, not truncated.
    """

    env: Env

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

    def reset(self, key: jax.Array) -> EnvState:
        return self.env.reset(key)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        stepped = self.env.step(state, action)
        truncated = jnp.logical_and(
            stepped.step_count >= self.env.episode_length, jnp.logical_not(stepped.terminated)
        )
        stepped = stepped.replace(truncated=truncated)
        key, reset_key = jax.random.split(stepped.key)
        fresh = self.env.reset(reset_key)
        done = stepped.done

        def pick(new, old):
            return jnp.where(done, new, old)

        return stepped.replace(
            physics=jax.tree.map(pick, fresh.physics, stepped.physics),
            obs=pick(fresh.obs, stepped.obs),
            obs_signals=jax.tree.map(pick, fresh.obs_signals, stepped.obs_signals),
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
        return jax.vmap(self.env.step)(state, action)
