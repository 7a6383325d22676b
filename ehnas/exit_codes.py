"""Exit codes of the `ehnas` commands: one documented code per failure class.

Scripts and schedulers branch on these (docs/pipeline.md, "Operations and failures", holds the
table). Every expected failure leaves through `CliError`, which prints one boxed message and no
traceback; a traceback with code 1 means a bug.
"""

from __future__ import annotations

from enum import IntEnum

try:  # typer >= 0.2x ships its own copy of click and catches only that copy's exceptions
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer runs on the click package
    from click import ClickException  # type: ignore[assignment]


class ExitCode(IntEnum):
    """What the process exit status of `ehnas run` / `resume` / `knowledge add` means."""

    OK = 0  # the run registered its winner, or registration was disabled
    UNEXPECTED = 1  # an unforeseen error (a bug): Python's traceback is printed
    USAGE = 2  # bad command line or config: unknown key, wrong type, unknown name, missing file
    DATA = 3  # the dataset (or a paper folder) is missing, unreadable, too small or too damaged
    REGISTRY = 4  # MLflow unreachable at start, or the winner's registration failed
    RUN_FAILED = 5  # a pipeline step failed after the run started
    LOCKED = 6  # another process holds this run name's lock
    INTERRUPTED = 130  # SIGINT (Ctrl-C) stopped the run: 128 + 2, as shells report it
    TERMINATED = 143  # SIGTERM (`kill`, `timeout`, a scheduler) stopped the run: 128 + 15


class CliError(ClickException):
    """An expected failure: printed as one boxed message, the process exits with `code`.

    Args:
        message: what went wrong and what to do (the box's whole text).
        code: the failure class.
    """

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = int(code)
