"""No run hangs silently: a watchdog thread over the compiled calls, and signals that reach it.

The driver marks each phase that runs compiled code or reads and writes checkpoints (``init``,
``chunk``, ``eval``, ``checkpoint``) with ``phase(name)``; XLA compiles and videos are marked
untimed (``timed=False``: a big model may compile for minutes). A daemon thread watches the
timed phase's age, and in an untimed phase the process's CPU time (a compile works; a
deadlocked one idles every thread): when a timed phase makes no progress, or an untimed one
uses no CPU, for ``stall_s`` seconds it prints one line naming the phase and where the run
stands (its run directory keeps the last checkpoint, so it resumes), and ends the process
with ``STALL_EXIT``.

A process stuck inside a compiled call (a deadlocked XLA execution holds the main thread in C)
never runs Python's signal handlers, so SIGINT and SIGTERM would be lost: ``arm`` routes them
through ``signal.set_wakeup_fd`` to the thread as well, which ends the process at once on the
second one (128 + the signal), wherever the main thread is. The first still asks the run to
stop at the next chunk boundary (``rlx.core.interrupts``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

from rlx.core import interrupts

STALL_EXIT = 4  # the exit status of a run the watchdog stopped


class Watchdog:
    """The watching thread's state: the current phase, since when, and the signals seen."""

    def __init__(self, stall_s: float, where: str):
        self.stall_s, self.where = stall_s, where
        self.phase: str | None = None
        self.timed = False
        self.since = time.monotonic()
        # the process's CPU seconds when last seen to grow, and when: an untimed phase (a
        # compile) that uses no CPU for stall_s is stalled (a deadlock idles every thread)
        self.cpu_mark, self.cpu_since = time.process_time(), self.since
        self.signals = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.reader: socket.socket | None = None
        self.writer: socket.socket | None = None
        self.previous_fd: int | None = None

    def watch(self) -> None:
        """The thread: check the phase's age (and the signals) a few times a second."""
        while not self.stop.wait(self._tick()):
            self._read_signals()
            now, cpu = time.monotonic(), time.process_time()
            if cpu - self.cpu_mark >= min(1.0, 0.05 * self.stall_s):
                self.cpu_mark, self.cpu_since = cpu, now
            with self.lock:
                phase, timed, since = self.phase, self.timed, self.since
            if self.stall_s <= 0 or phase is None:
                continue
            if timed and now - since > self.stall_s:
                _exit(
                    STALL_EXIT,
                    f"rlx: stalled: no progress in {phase} for {now - since:.0f} s (limit "
                    f"run.stall_timeout_s={self.stall_s:g}); {self.where}",
                )
            idle = now - max(since, self.cpu_since)
            if not timed and idle > self.stall_s:  # a compile may run long, but not idle
                _exit(
                    STALL_EXIT,
                    f"rlx: stalled: no CPU time used in {phase} for {idle:.0f} s (limit "
                    f"run.stall_timeout_s={self.stall_s:g}); {self.where}",
                )

    def _tick(self) -> float:
        return min(0.25, self.stall_s / 4) if self.stall_s > 0 else 0.25

    def _read_signals(self) -> None:
        if self.reader is None:
            return
        try:
            data = self.reader.recv(64)
        except (BlockingIOError, OSError):
            return
        for signum in data:
            self.signals += 1
            if self.signals >= 2 and not self._handled_soon(self.signals):
                _exit(128 + signum, f"rlx: second signal {signum}: stopped at once; {self.where}")

    @staticmethod
    def _handled_soon(count: int, wait_s: float = 1.0) -> bool:
        """Whether the main thread's handler runs for the ``count``-th signal within
        ``wait_s`` (it is alive: it stops the run itself, writing its summary)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if interrupts.handled() >= count:
                return True
            time.sleep(0.02)
        return False


def _exit(code: int, line: str) -> None:
    """One line on stderr, then the process ends (no Python cleanup: the main thread may be
    stuck in C)."""
    try:
        sys.stdout.flush()
        os.write(2, (line + "\n").encode())
    finally:
        os._exit(code)


_active: Watchdog | None = None


@contextlib.contextmanager
def arm(stall_s: float, where: str) -> Iterator[Watchdog]:
    """Watches the block: stalls over ``stall_s`` seconds (0: never) and a second signal end
    the process with one line ending in ``where`` (how to resume). Signals reach the thread
    only when armed on the main thread."""
    global _active
    if _active is not None:  # nested (a run inside a run): the outer one watches
        yield _active
        return
    dog = Watchdog(stall_s, where)
    if threading.current_thread() is threading.main_thread() and sys.platform != "win32":
        dog.reader, dog.writer = socket.socketpair()
        dog.reader.setblocking(False)
        dog.writer.setblocking(False)
        dog.previous_fd = signal.set_wakeup_fd(dog.writer.fileno(), warn_on_full_buffer=False)
    thread = threading.Thread(target=dog.watch, name="rlx-watchdog", daemon=True)
    _active = dog
    thread.start()
    try:
        yield dog
    finally:
        _active = None
        dog.stop.set()
        thread.join()
        if dog.writer is not None:
            signal.set_wakeup_fd(dog.previous_fd if dog.previous_fd is not None else -1)
            dog.reader.close()
            dog.writer.close()


@contextlib.contextmanager
def phase(name: str, timed: bool = True) -> Iterator[None]:
    """Marks a phase the watchdog times (untimed: only named); a no-op when none is armed."""
    dog = _active
    if dog is None:
        yield
        return
    with dog.lock:
        outer = dog.phase, dog.timed
        dog.phase, dog.timed, dog.since = name, timed, time.monotonic()
    try:
        yield
    finally:
        with dog.lock:
            (dog.phase, dog.timed), dog.since = outer, time.monotonic()


def signals_seen() -> int:
    """How many SIGINT/SIGTERM the armed watchdog has counted (0 when none is armed)."""
    return 0 if _active is None else _active.signals
