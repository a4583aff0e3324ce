"""Signals over a whole run's life, and the fault points the fault matrix kills a run at.

``handling()`` installs one handler for SIGINT and SIGTERM for as long as a command runs
(config, build, compile, chunks, checkpoint writes, eval). The first signal only sets
``StopFlag.signum``: the driver stops at the next chunk boundary (or before the first chunk,
when it came during compile), writes ``summary.json`` and the CLI prints how to resume. A
second Ctrl-C in the chunk loop raises ``Interrupted`` at once, which the driver catches to
still write ``summary.json``; later signals are ignored while it does. During imports, build
and compile nothing is raised (see ``StopFlag``). No KeyboardInterrupt is ever raised by rlx's
handler.

``fault(point)``: with ``RLX_FAULT=<point>[:<n>]`` in the environment, the process kills
itself (SIGKILL) at the n-th time (default the first) it reaches ``point``: ``compile``,
``chunk``, ``eval``, ``metrics`` (half a row written), ``checkpoint`` (mid-write). Used by
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

POINTS = ("compile", "chunk", "eval", "metrics", "checkpoint")


class Interrupted(BaseException):  # noqa: N818 (like KeyboardInterrupt, not an error)
    """A second Ctrl-C: stop now (the driver still writes summary.json)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopFlag:
    """The handler: the first SIGINT/SIGTERM sets ``signum``; a second Ctrl-C raises, but only
    inside ``abortable()`` (the chunk loop). Elsewhere (imports, build, compile) an exception
    raised at a random bytecode can land inside a C extension's import and abort the process,
    so there the run stops at the first safe point instead, and says so once."""

    def __init__(self):
        self.signum: int | None = None
        self.aborting = False
        self.abortable = False
        self.told = False

    def __call__(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT and self.abortable and not self.aborting:
            self.aborting = True
            raise Interrupted(self.signum)
        elif signum == signal.SIGINT and not self.told:
            self.told = True
            os.write(2, b"[rlx] stopping at the first safe point (after imports or compile)\n")


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
    name, _, count = wanted.partition(":")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] == int(count or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


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
