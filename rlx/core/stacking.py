"""Learners stacked on a leading axis: built one at a time, run vmapped.

``init_each`` builds each learner's initial state one at a time (``lax.map``) and stacks
them: the same values a ``vmap`` gives, but not the vmapped init program that jaxlib 0.10.2's
CPU runtime was seen to deadlock on (every thread idle, the caller waiting for ever: a
population of 4 on the MJX humanoid, every ``--sweep`` of ``brax:hopper``). The training
chunks stay vmapped.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from rlx.core.types import PyTree


def init_each(init: Callable[[jax.Array], PyTree], keys: jax.Array) -> PyTree:
    """``init(key)`` for each of ``keys`` [N], one at a time, stacked: leaves [N, ...]."""
    return jax.lax.map(init, keys)


def stack(trees: list[PyTree]) -> PyTree:
    """Trees of the same structure stacked leaf by leaf on a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
