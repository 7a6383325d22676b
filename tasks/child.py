"""Work in a child process, so that a time limit can really stop it.

A Prefect ``timeout_seconds`` cannot interrupt a task that runs in a worker thread (thread and
Dask runners): it fails the task only once it returns. `run_in_child` runs the work in a fresh
process ('spawn': no inherited locks or CUDA state), forwards the events it emits to the caller
(training progress), and kills it when the limit passes; the caller then gets `ChildTimeout`,
which `tasks.retry` never retries. The child ends with its parent: it watches the parent's pid,
and the caller kills it in a ``finally`` (a `RunInterrupted` raised in the caller's thread by
`ehnas.interrupt` included). Arguments and results cross as plain picklable values.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# Test-only: a child whose limit key equals this variable sleeps forever before its work (a real hang).
HANG_ENV = "EHNAS_TEST_HANG_IN_CHILD"
_POLL_S = 0.5  # the caller's thread returns to Python this often, so a signal's RunInterrupted lands


class ChildTimeout(TimeoutError):
    """The work ran past its limit and its process was killed.

    Args:
        what: the task, as the message names it.
        limit_s: the limit in seconds.
        key: the config key that sets the limit.
        pid: the killed process.
    """

    def __init__(self, what: str, limit_s: float, key: str, pid: int) -> None:
        self.what, self.limit_s, self.key, self.pid = what, limit_s, key, pid
        super().__init__(f"{what} ran past {key} = {limit_s:g} s; its process (pid {pid}) was killed; not retried")

    def __reduce__(self) -> tuple[Any, ...]:  # Prefect pickles a failed task's exception
        return (ChildTimeout, (self.what, self.limit_s, self.key, self.pid))


def run_in_child(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    limit_s: float | None,
    key: str,
    what: str,
    on_event: Callable[[Any], None] | None = None,
    torch_threads: int | None = None,
) -> Any:
    """``fn(*args)`` in a child process; with `on_event`, ``fn(*args, emit=...)`` and each emitted
    value is passed to `on_event` in this thread. `fn` must be a module-level function.

    Raises:
        ChildTimeout: `limit_s` passed (the child is killed first).
        The child's own exception (or a `RuntimeError` naming it when it cannot be pickled, or
        when the child died without an answer).
    """
    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(writer, fn, args, on_event is not None, torch_threads, os.getpid(), key), daemon=True)
    with _may_start_children():
        child.start()
    writer.close()
    deadline = None if limit_s is None else time.monotonic() + limit_s
    try:
        while True:
            left = _POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                _stop(child)
                raise ChildTimeout(what, float(limit_s or 0), key, int(child.pid or 0))
            if not reader.poll(min(left, _POLL_S)):
                continue
            try:
                kind, value = pickle.loads(reader.recv_bytes())
            except EOFError:
                child.join(5)
                raise RuntimeError(f"{what}: its process (pid {child.pid}) exited with code {child.exitcode} and no result") from None
            if kind == "event" and on_event is not None:
                on_event(value)
            elif kind == "result":
                return value
            elif kind == "error":
                raise value
    finally:
        _stop(child)
        reader.close()


@contextlib.contextmanager
def _may_start_children() -> Iterator[None]:
    """Lets a daemonic process (a Dask nanny's worker) start the child: multiprocessing forbids it
    because a killed daemon would orphan its children, but this child watches its parent's pid
    and ends itself (`_exit_with_parent`)."""
    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    daemon = config.get("daemon")
    config["daemon"] = False
    try:
        yield
    finally:
        config["daemon"] = daemon


def _stop(child: Any) -> None:
    """Kills the child if it still runs and reaps it (no zombie, no orphan)."""
    if child.is_alive():
        child.kill()
    child.join()


def _child_main(writer: Any, fn: Callable[..., Any], args: tuple[Any, ...], emits: bool, torch_threads: int | None, parent: int, key: str) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    if os.environ.get(HANG_ENV) == key:
        threading.Event().wait()
    try:
        kwargs = {"emit": lambda value: _send(writer, "event", value)} if emits else {}
        _send(writer, "result", fn(*args, **kwargs))
    except BaseException as err:  # noqa: BLE001 - handed to the parent
        _send(writer, "error", _picklable(err))
    finally:
        writer.close()


def _send(writer: Any, kind: str, value: Any) -> None:
    """Plain pickle, not the connection's own: torch's reducer there would share tensors through
    file descriptors that die with this process."""
    writer.send_bytes(pickle.dumps((kind, value)))


def _picklable(err: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any pickling failure: send its text instead
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err


def _exit_with_parent(parent: int) -> None:
    """Ends this process once its parent is gone (then it is re-parented)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
