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
    """Turns off asynchronous dispatch on the CPU backend (GPU/TPU are untouched) and lowers
    threefry as straight-line code there (``threefry_unrolled_on_cpu``).

    On these 2-core machines jaxlib 0.10.2's CPU runtime was seen to wedge, every worker idle
    and the caller waiting forever for a result, when several large programs ran in one
    process with async dispatch on (3 hangs in 5 multi-program runs of
    ``scripts/bench_cartpole.py``; none in 5 runs with it off). The driver waits for each
    chunk anyway, so little overlap is lost. Set ``RLX_CPU_ASYNC_DISPATCH=1`` to keep JAX's default.
    Only before the CPU backend starts (the client reads the flag when it is made): ``rlx
    train``/``meta`` call it first thing; in Python, call it before any other JAX work.
    """
    import jax  # here, not at import: `import rlx` stays light (the CLI's signal handler first)

    if os.environ.get("RLX_CPU_ASYNC_DISPATCH", "0") != "1":
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    threefry_unrolled_on_cpu()


def threefry_unrolled_on_cpu() -> bool:
    """Lowers JAX's threefry PRNG on the CPU as straight-line code, as JAX does on every other
    platform, instead of its CPU default: a ``while`` loop of 5 rounds per random draw. The same
    bits either way (only the program's form changes); each draw in a scanned step then costs a
    few fused kernels instead of a loop of about 80 small ones, and XLA compiles it faster:
    measured on 2 cores, PureJaxRL's CartPole settings, in one process, the two forms alternated
    (scripts/bench_threefry.py), see docs/bench_threefry.md. ``RLX_THREEFRY_ROLLED=1`` keeps
    JAX's default. Applies to programs lowered afterwards; True when applied. Relies on JAX's
    private ``threefry2x32`` module (checked: a JAX without it is left as it is).
    """
    if os.environ.get("RLX_THREEFRY_ROLLED", "0") == "1":
        return False
    return threefry_form_on_cpu("straight")


def threefry_form_on_cpu(form: str) -> bool:
    """Registers ``form`` (``'straight'``: straight-line code; ``'loop'``: JAX's CPU default)
    as threefry's CPU lowering for programs lowered afterwards; False where this JAX lacks the
    private module (nothing changed)."""
    try:
        from jax._src.random import threefry2x32 as threefry
        from jax.interpreters import mlir

        rules = {
            "straight": threefry._threefry2x32_lowering_rule,
            "loop": threefry._threefry2x32_cpu_lowering_rule,
        }
        primitive = threefry.threefry2x32_p
    except (ImportError, AttributeError):
        return False
    mlir.register_lowering(primitive, rules[form], platform="cpu")
    return True


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


class DistributedError(ValueError):
    """Multi-process settings that cannot start (the message says which and why)."""


def cluster_from_env() -> dict | None:
    """The multi-process settings the environment gives, None for a single process:
    ``JAX_COORDINATOR_ADDRESS`` with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or a
    cluster JAX detects itself (a SLURM step of several tasks, i.e. ``srun``, not a batch
    script's own process; a TPU pod slice of several hosts): then ``{}``, and
    ``jax.distributed.initialize`` finds the rest."""
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        out = {"coordinator": address}
        for key, name in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
            if os.environ.get(name):
                out[key] = int(os.environ[name])
        return out
    if int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1:  # srun of several tasks
        return {}
    if len(os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1:
        return {}
    return None


def distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    heartbeat_s: int = 20,
) -> int:
    """Starts JAX's distributed runtime when asked (the arguments) or when the environment
    says so (``cluster_from_env``); the number of processes (1: nothing started). Before any
    JAX computation. On the CPU the collectives go over gloo. A process that dies is noticed by
    the others within about ``heartbeat_s`` seconds (they exit non-zero rather than hang)."""
    import jax

    settings = None
    if coordinator is not None or num_processes is not None or process_id is not None:
        if coordinator is None or num_processes is None or process_id is None:
            raise DistributedError(
                "--coordinator, --num-processes and --process-id go together (or set none: "
                "JAX_COORDINATOR_ADDRESS, SLURM and TPU pods are picked up from the environment)"
            )
        if not 0 <= process_id < num_processes:
            raise DistributedError(
                f"--process-id {process_id}: must be in 0..{num_processes - 1} (--num-processes)"
            )
        settings = {
            "coordinator": coordinator,
            "num_processes": num_processes,
            "process_id": process_id,
        }
    else:
        settings = cluster_from_env()
    if settings is None or settings.get("num_processes") == 1:
        return 1
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=settings.get("coordinator"),
            num_processes=settings.get("num_processes"),
            process_id=settings.get("process_id"),
            heartbeat_timeout_seconds=heartbeat_s,
            initialization_timeout=int(os.environ.get("RLX_DISTRIBUTED_TIMEOUT_S", "120")),
        )
    except Exception as error:  # noqa: BLE001 (a bad address, a peer that never came, ...)
        reason = " ".join(str(error).split())[:200]
        raise DistributedError(
            f"jax.distributed did not start ({type(error).__name__}: {reason})"
        ) from None
    return jax.process_count()


def is_primary() -> bool:
    """Whether this is the process that writes the run's files (process 0; the only one of a
    single-process run)."""
    import jax

    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process got here (a no-op for one process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
    """``flag`` or'ed over the processes (itself for one process): a collective, so every
    process must call it at the same point."""
    import jax

    if jax.process_count() == 1:
        return flag
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray([flag]))))
