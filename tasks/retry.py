"""When a failed task is worth retrying: transient faults only.

A deterministic failure (an invalid spec, out of memory on that architecture, a bug) fails the
same way every time, so retrying it only wastes the budget; it is recorded instead. I/O hiccups,
connection resets, timeouts, rate limits and server errors of the LLM endpoint are retried.
A missing file, a permission refused, a path of the wrong kind and a full disk are `OSError`s
too, but no second try mends them: they fail at once.
"""

from __future__ import annotations

import errno
from typing import Any

from nas_lib.evaluation import TRANSIENT_ERRORS
from nas_lib.failures import is_out_of_memory


def _llm_transient() -> tuple[type[BaseException], ...]:
    import openai

    return (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)


# OSErrors that say something about the machine or the input, not about this moment.
PERMANENT_OS_ERRORS: tuple[type[OSError], ...] = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
PERMANENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG})


def is_permanent_os_error(err: BaseException) -> bool:
    """True for an `OSError` a retry cannot mend: missing path, no permission, wrong kind of
    path, full disk or quota, read-only file system."""
    return isinstance(err, PERMANENT_OS_ERRORS) or (isinstance(err, OSError) and err.errno in PERMANENT_ERRNOS)


def is_transient(err: BaseException | None) -> bool:
    """True for faults that may pass on a second try (never for an OOM, a permanent `OSError` or a
    task that ran past its ``timeout_seconds`` or whose child process was killed at its limit: it would again)."""
    if err is None or type(err).__name__ in ("TaskRunTimeoutError", "ChildTimeout"):
        return False
    if is_out_of_memory(err) or is_permanent_os_error(err):
        return False
    return isinstance(err, TRANSIENT_ERRORS + _llm_transient())


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the task failed on a transient fault."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as err:  # noqa: BLE001 - the failure itself is what we inspect
        return is_transient(err)
    return False
