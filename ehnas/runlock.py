"""One writer per run name: an exclusive lock on a file in the run folder, held across processes.

`ehnas run` and `ehnas resume` take the lock before Prefect starts. It is an ``fcntl.flock`` on
``<run folder>/.ehnas.lock``: the kernel releases it when the holding process ends in any way
(``kill -9`` included), so a crash never leaves a stale lock behind. The file also records who
holds it (pid, host, start time), which the message to a second writer names.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".ehnas.lock"


class RunLocked(RuntimeError):
    """The run folder is locked by another live process."""


def _holder(lock_file: Path) -> str:
    """Who holds the lock, as recorded in the file (best effort: the holder may be writing it)."""
    try:
        info = json.loads(lock_file.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')}"


def _record(handle, run_name: str) -> None:
    """Writes who holds the lock into the (locked) file."""
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since, "run": run_name}))
    handle.flush()


OTHER_NAME_HINT = "choose another --run-name"  # what `ehnas run` can do; `ehnas resume` cannot


@contextlib.contextmanager
def run_lock(run_dir: str | Path, wait: bool = False, other_name: str = OTHER_NAME_HINT) -> Iterator[Path]:
    """Holds the run folder's lock for the block (creating the folder when needed).

    Args:
        run_dir: the run folder (``<runs_root>/<run name>``).
        wait: block until the holder ends instead of failing (saying so on stderr first).
        other_name: the message's last way out (empty: none, as for `ehnas resume`).

    Yields:
        The lock file.

    Raises:
        RunLocked: another process holds the lock and ``wait`` is False; the message names the
            run, the holder and what to do.
    """
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = folder / LOCK_NAME
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                ways = ["wait for it to finish", "pass --wait to queue behind it", *([other_name] if other_name else [])]
                raise RunLocked(
                    f"run '{folder.name}' is already running ({_holder(lock_file)}); {', '.join(ways[:-1])}{',' if len(ways) > 2 else ''} or {ways[-1]}"
                ) from None
            print(f"run '{folder.name}' is already running ({_holder(lock_file)}); waiting for it to end (--wait)", file=sys.stderr, flush=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            _record(handle, folder.name)
            yield lock_file
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def cli_run_lock(run_dir: str | Path, wait: bool = False, other_name: str = OTHER_NAME_HINT) -> Iterator[Path]:
    """`run_lock` for the command line: a held lock is a `CliError` with exit code `ExitCode.LOCKED`."""
    from ehnas.exit_codes import CliError, ExitCode

    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(run_lock(run_dir, wait, other_name))
        except RunLocked as err:
            raise CliError(str(err), ExitCode.LOCKED) from None
        yield held
