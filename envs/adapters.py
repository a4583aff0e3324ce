"""What the adapters of other libraries' envs share (``brax_adapter``, ``playground_adapter``).

Both wrap a library env whose state carries ``obs``, ``reward``, ``done`` and ``metrics``, whose
reset takes a raw uint32 key, and whose reward is split into unit-weight terms plus a
``residual``, so that weights of 1 reproduce the library's reward exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rlx.core.types import EnvState
from rlx.envs.base import make_state, transition_state


def split_reward(
    reward: jax.Array,
    metrics: Mapping[str, jax.Array],
    scales: Mapping[str, float],
    *,
    prefix: str = "",
) -> dict[str, jax.Array]:
    """Terms ``name: scale * metrics[prefix + name]`` for each part in ``scales``, plus
    ``residual`` = reward minus the parts' sum: unit weights on all terms give ``reward``."""
    terms = {name: scale * metrics[f"{prefix}{name}"] for name, scale in scales.items()}
    terms["residual"] = reward - sum(terms.values(), jnp.zeros(()))
    return terms


def first_state(
    library_reset: Callable[[jax.Array], Any],
    key: jax.Array,
    *,
    signals: Callable[[Any], dict[str, jax.Array]],
    term_names: tuple[str, ...],
) -> EnvState:
    """The EnvState of the library env's reset (its state is the physics), drawn from a
    subkey of ``key`` passed as raw key data, as the library expects."""
    key, reset_key = jax.random.split(key)
    library_state = library_reset(jax.random.key_data(reset_key))
    return make_state(
        physics=library_state,
        obs=library_state.obs,
        signals=signals(library_state),
        term_names=term_names,
        key=key,
    )


def next_state(
    state: EnvState,
    library_state: Any,
    *,
    signals: dict[str, jax.Array],
    terms: dict[str, jax.Array],
    primary: jax.Array,
) -> EnvState:
    """The EnvState after the library env's step; its ``done`` is ``terminated``."""
    return transition_state(
        state,
        physics=library_state,
        obs=library_state.obs,
        signals=signals,
        terms=terms,
        primary=primary,
        terminated=library_state.done > 0.5,
    )
