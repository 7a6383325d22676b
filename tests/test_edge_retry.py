"""Issue 13 item 4: non-transient errors are never retried (a missing file was retried twice)."""

from __future__ import annotations

import errno

import httpx
import openai
import pytest

from tasks.retry import is_permanent_os_error, is_transient, retry_transient


@pytest.mark.parametrize(
    "err",
    [
        FileNotFoundError(errno.ENOENT, "No such file", "/data/x.png"),
        PermissionError(errno.EACCES, "Permission denied", "/data"),
        IsADirectoryError(errno.EISDIR, "Is a directory", "/data"),
        NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/x.png/y"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
        RuntimeError("CUDA out of memory"),
        ValueError("invalid spec"),
    ],
)
def test_permanent_faults_are_not_retried(err: BaseException) -> None:
    assert not is_transient(err)


@pytest.mark.parametrize(
    "err",
    [
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        TimeoutError("timed out"),
        OSError(errno.EIO, "Input/output error"),
        openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")),
    ],
)
def test_transient_faults_are_retried(err: BaseException) -> None:
    assert is_transient(err)
    assert not is_permanent_os_error(err)


@pytest.mark.slow
def test_a_prefect_task_retries_a_reset_but_not_a_missing_file(tmp_path) -> None:
    """The retry policy as Prefect applies it: 3 attempts for a reset, 1 for a missing file and
    1 for a task that ran past its ``timeout_seconds`` (it would again)."""
    import time

    from prefect import flow, task
    from prefect.testing.utilities import prefect_test_harness

    attempts: dict[str, int] = {}

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
    def fail_with(kind: str) -> None:
        attempts[kind] = attempts.get(kind, 0) + 1
        if kind == "missing":
            open(tmp_path / "absent.png", "rb")  # noqa: SIM115 - raises FileNotFoundError
        if kind == "slow":
            time.sleep(5)
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    @flow
    def both() -> None:
        for kind in ("missing", "reset"):
            fail_with(kind, return_state=True)
        fail_with.with_options(timeout_seconds=0.5)("slow", return_state=True)

    with prefect_test_harness(server_startup_timeout=120):
        both()
    assert attempts == {"missing": 1, "reset": 3, "slow": 1}
