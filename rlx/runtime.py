"""Process-wide JAX settings rlx applies before it runs anything."""

from __future__ import annotations

import os

# XLA reads XLA_FLAGS once, when the CPU backend starts, so this runs at ``import rlx`` (see
# ``xla_cpu_flags``), before any array exists.
SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def xla_cpu_flags() -> None:
    """Adds ``SCHEDULER_FLAG`` to XLA_FLAGS unless the user set that flag or
    ``RLX_CPU_CONCURRENT_SCHEDULER=1``.

    jaxlib 0.10.2's CPU runtime wedged (main thread waiting in
    ``CpuPjRtRawLoadedExecutable::Execute``, no CPU used) in 2 of 6 runs of a meta-learner's
    init program and in 3 of 14 of another; with XLA's concurrency-optimised scheduler off, 22
    of 22 runs finished, at the same speed (16 vmapped CartPole runs: 7.9 s against 7.7 s for
    50 iterations). The flag only touches the CPU backend.
    """
    if os.environ.get("RLX_CPU_CONCURRENT_SCHEDULER", "0") == "1":
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {SCHEDULER_FLAG}".strip()


xla_cpu_flags()


def configure() -> None:
    """Turns off asynchronous dispatch on the CPU backend (GPU/TPU are untouched).

    On these 2-core machines jaxlib 0.10.2's CPU runtime was seen to wedge, every worker idle
    and the caller waiting forever for a result, when several large programs ran in one
    process with async dispatch on (3 hangs in 5 multi-program runs of
    ``scripts/bench_cartpole.py``; none in 5 runs with it off). The driver waits for each
    chunk anyway, so little overlap is lost. Set ``RLX_CPU_ASYNC_DISPATCH=1`` to keep JAX's default.
    """
    import jax  # here, not at import: `import rlx` stays light (the CLI's signal handler first)

    if os.environ.get("RLX_CPU_ASYNC_DISPATCH", "0") != "1":
        jax.config.update("jax_cpu_enable_async_dispatch", False)


def cpu_devices_for(members: int) -> int:
    """Splits the host CPU into as many XLA devices as divide ``members`` (at most one per
    core), so that a members run's learners run side by side, one device per core: the
    number of CPU devices set (1: left as it is). Only before JAX's backends start (a no-op
    after, e.g. inside a test process); it does not touch GPU or TPU devices."""
    import jax

    cores = os.cpu_count() or 1
    count = max(d for d in range(1, min(cores, members) + 1) if members % d == 0)
    if count == 1 or os.environ.get("RLX_CPU_DEVICES") == "1":
        return 1
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return 1
    jax.config.update("jax_num_cpu_devices", count)
    return count
