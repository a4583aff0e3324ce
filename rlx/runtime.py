"""Process-wide JAX settings rlx applies before it runs anything."""

from __future__ import annotations

import os

import jax


def configure() -> None:
    """Turns off asynchronous dispatch on the CPU backend (GPU/TPU are untouched).

    On these 2-core machines jaxlib 0.10.2's CPU runtime was seen to wedge, every worker idle
    and the caller waiting forever for a result, when several large programs ran in one
    process with async dispatch on (3 hangs in 5 multi-program runs of
    ``scripts/bench_cartpole.py``; none in 5 runs with it off). The driver waits for each
    chunk anyway, so little overlap is lost. Set ``RLX_CPU_ASYNC_DISPATCH=1`` to keep JAX's default.
    """
    if os.environ.get("RLX_CPU_ASYNC_DISPATCH", "0") != "1":
        jax.config.update("jax_cpu_enable_async_dispatch", False)
