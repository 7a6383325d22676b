"""SIGINT and SIGTERM stop an `ehnas run` cleanly, in this order: the running work, the ledger, the
Prefect server, the process.

The flow runs in a thread of its own while the main thread only waits for it and owns the signal
handlers (Prefect installs its SIGTERM handler only in the main thread, and that handler awaits
running tasks before anything else happens). On the first signal the flow thread and every
thread running a Prefect task get `RunInterrupted` raised in them (delivered at their next Python
line: a torch kernel in progress finishes first); Prefect records those runs as crashed while its
server is still up. Then the caller writes the ledger and stops the server, and the process
exits with 130 (SIGINT) or 143 (SIGTERM). A second signal while that happens ends the process at
once with the same code.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ehnas.exit_codes import ExitCode

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}
# a thread with a frame from one of these files is running a Prefect flow or task of this run
_ENGINE_FILES = (os.path.join("prefect", "task_engine.py"), os.path.join("prefect", "flow_engine.py"))


class RunInterrupted(BaseException):
    """Raised in the run's threads after a signal; a BaseException, so that no ``except
    Exception`` in a step swallows it."""


class Interrupted(Exception):
    """The run stopped on a signal (raised in the main thread once its work has ended).

    Args:
        signum: the signal received.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")

    @property
    def exit_code(self) -> ExitCode:
        return EXIT_CODES[signal.Signals(self.signum)]


def _engine_threads() -> list[int]:
    """Ids of the threads (not this one) whose stack runs a Prefect flow or task."""
    me = threading.get_ident()
    out = []
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        cursor: Any = frame
        while cursor is not None:
            if cursor.f_code.co_filename.endswith(_ENGINE_FILES):
                out.append(ident)
                break
            cursor = cursor.f_back
    return out


def _raise_in(ident: int) -> None:
    """Schedules `RunInterrupted` in thread `ident` (CPython raises it at the thread's next line)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(RunInterrupted))


class _Stopper:
    """The signal handlers' state: which signal came, and whether the flow thread runs."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.flow_running = False

    def handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:  # a second signal: the user insists
            print(f"\n{signal.Signals(signum).name} again: stopping now", file=sys.stderr, flush=True)
            os._exit(int(EXIT_CODES[signal.Signals(self.signum)]))
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping the run (running work is cancelled)", file=sys.stderr, flush=True)
        if not self.flow_running:
            raise Interrupted(signum)
        for ident in _engine_threads():
            _raise_in(ident)


@contextlib.contextmanager
def signals_stop_the_run() -> Iterator[Callable[[Callable[[], T]], T]]:
    """Installs the SIGINT/SIGTERM handlers for the block (main thread only).

    Yields:
        ``run(work)``: calls `work` in a flow thread (with this thread's context: Prefect's
        settings and tags) and returns its result; after a signal it waits for that thread to
        end and raises `Interrupted`. A signal outside ``run`` raises `Interrupted` at once.
    """
    stopper = _Stopper()
    previous = {s: signal.signal(s, stopper.handle) for s in SIGNALS}

    def run(work: Callable[[], T]) -> T:
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["result"] = work()
            except BaseException as err:  # noqa: BLE001 - handed to the main thread below
                outcome["error"] = err

        thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), name="ehnas-flow")
        stopper.flow_running = True
        try:
            thread.start()
            thread.join()
        finally:
            stopper.flow_running = False
        if stopper.signum is not None:
            raise Interrupted(stopper.signum) from outcome.get("error")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    try:
        yield run
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
