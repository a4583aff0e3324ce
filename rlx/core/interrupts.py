"""Signals over a whole run's life, and the fault points the fault matrix kills a run at.

``handling()`` installs one handler for SIGINT and SIGTERM for as long as a command runs
(config, build, compile, chunks, checkpoint writes, eval). The first signal only sets
``StopFlag.signum``: the driver stops at the next chunk boundary (or before the first chunk,
when it came during compile), writes ``summary.json`` and the CLI prints how to resume. A
second signal (Ctrl-C or SIGTERM) in the chunk loop raises ``Interrupted`` at once, which the
driver catches to still write ``summary.json``; later signals are ignored while it does.
Elsewhere (imports, build) a second signal ends the process at once with one line: nothing
of the run is lost there. A main thread stuck in a compiled call runs no Python handler at
all: ``rlx.core.watchdog`` sees the signals then and ends the process on the second. No
KeyboardInterrupt is ever raised by rlx's handler.

``fault(point)``: with ``RLX_FAULT=<point>[:<n>]`` in the environment, the process kills
itself (SIGKILL) at the n-th time (default the first) it reaches ``point``: ``init``,
``compile``, ``chunk``, ``eval``, ``metrics`` (half a row written), ``checkpoint``
(mid-write). ``RLX_FAULT=<point>:<n>:block`` blocks there instead, for ever, inside a compiled
call (as a deadlocked XLA execution does: no Python signal handler runs). Used by
``scripts/fault_matrix.py``; a no-op otherwise. ``read_fault(point)``: with
``RLX_READ_FAULT=<point>@<process index>``, raises an OSError the first time that process (only
it) reaches ``point`` (``restore``: just after orbax read a checkpoint's arrays), as arrays
unusable on one host would.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sys
import threading

POINTS = ("init", "compile", "chunk", "eval", "metrics", "checkpoint")


class Interrupted(BaseException):  # noqa: N818 (like KeyboardInterrupt, not an error)
    """A second Ctrl-C: stop now (the driver still writes summary.json)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopFlag:
    """The handler: the first SIGINT/SIGTERM sets ``signum``; a second one raises inside
    ``abortable()`` (the chunk loop: the driver still writes its summary). Elsewhere (imports,
    build) an exception raised at a random bytecode can land inside a C extension's import and
    abort the process uncleanly, so there a second signal ends the process at once instead
    (``os._exit``), with one line. ``handled`` counts the signals this handler ran for."""

    def __init__(self):
        self.signum: int | None = None
        self.aborting = False
        self.abortable = False
        self.handled = 0

    def __call__(self, signum, frame):
        self.handled += 1
        if self.signum is None:
            self.signum = signum
        elif self.aborting:
            return  # the run is winding down: it writes its summary and ends
        elif self.abortable:
            self.aborting = True
            raise Interrupted(self.signum)
        else:
            sys.stdout.flush()
            os.write(2, f"[rlx] second signal {signum}: stopped at once\n".encode())
            os._exit(128 + signum)


_installed: StopFlag | None = None


@contextlib.contextmanager
def handling():
    """The process's StopFlag, installed for the block (the outer one when nested; a fresh
    uninstalled flag off the main thread, where signals cannot be handled)."""
    global _installed
    if _installed is not None:
        yield _installed
        return
    flag = StopFlag()
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
    _installed = flag
    try:
        yield flag
    finally:
        _installed = None
        for s, handler in previous.items():
            signal.signal(s, handler)


def install_for_process() -> None:
    """Installs the handler for the rest of the process (the ``rlx`` command, from its first
    line to interpreter exit: a signal during start-up or shutdown is no traceback either)."""
    global _installed
    if _installed is None and threading.current_thread() is threading.main_thread():
        _installed = StopFlag()
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _installed)


def handled() -> int:
    """How many signals the process's handler has run for (0 when none is installed)."""
    return 0 if _installed is None else _installed.handled


def check() -> None:
    """Raises ``Interrupted`` when a stop was asked for (before a run has started: there is
    nothing to save yet)."""
    if _installed is not None and _installed.signum is not None:
        raise Interrupted(_installed.signum)


def stopped_before_start(stopped: Interrupted) -> int:
    """One line for a command stopped before its run started (nothing was written): the exit
    status, 128 + the signal."""
    print(
        f"[rlx] stopped by signal {stopped.signum} before the run started; nothing was written",
        file=sys.stderr,
        flush=True,
    )
    return 128 + stopped.signum


@contextlib.contextmanager
def abortable():
    """A block a second Ctrl-C may cut short (``Interrupted`` raised in it)."""
    flag = _installed
    if flag is None:
        yield
        return
    flag.abortable = True
    try:
        yield
    finally:
        flag.abortable = False


_reached: collections.Counter = collections.Counter()


def fault(point: str) -> None:
    """Kills the process at ``point`` when ``RLX_FAULT`` names it (see the module docstring)."""
    wanted = os.environ.get("RLX_FAULT")
    if not wanted:
        return
    name, _, rest = wanted.partition(":")
    count, _, how = rest.partition(":")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] != int(count or 1):
        return
    if how == "block":
        os.write(2, f"[rlx] RLX_FAULT: blocking at {point} for ever\n".encode())
        _block_in_a_compiled_call()
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _block_in_a_compiled_call() -> None:
    """Never returns: the main thread waits in XLA for a host callback that waits for ever,
    with SIGINT and SIGTERM blocked on it, so that (as in a deadlocked XLA execution, where the
    main thread never reaches Python again) its Python signal handler never runs; the signals
    go to another thread, where only the C-level handler and ``rlx.core.watchdog`` see them."""
    import jax
    import jax.numpy as jnp

    never = threading.Event()

    def wait(x):
        never.wait()
        return x

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    out = jax.ShapeDtypeStruct((), jnp.float32)
    jax.jit(lambda x: jax.pure_callback(wait, out, x))(jnp.float32(0)).block_until_ready()


def read_fault(point: str) -> None:
    """Raises OSError at ``point`` in the process ``RLX_READ_FAULT`` names (see above)."""
    wanted = os.environ.get("RLX_READ_FAULT")
    if not wanted:
        return
    name, _, index = wanted.partition("@")
    import jax

    if name == point and int(index or 0) == jax.process_index() and not _reached[f"read:{point}"]:
        _reached[f"read:{point}"] += 1
        raise OSError(f"injected read fault at {point} (RLX_READ_FAULT)")
