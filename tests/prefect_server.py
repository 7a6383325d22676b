"""A real `prefect server start` on 127.0.0.1 for tests, and polling for what it should show."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(what: str, check: Callable[[], Any], limit_s: float = 240.0, proc: subprocess.Popen | None = None, log: Path | None = None) -> Any:
    """`check()`'s first truthy value, asked once a second; the test fails after `limit_s` or
    when `proc` (the server) exits, with the end of its `log`."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"prefect server exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:] if log else ''}")
        found = check()
        if found:
            return found
        time.sleep(1)  # polling a server, not timing anything
    pytest.fail(f"no {what} after {limit_s} s:\n{log.read_text()[-3000:] if log else ''}")


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def prefect_server(home: Path, ui: bool = False, **env_extra: str) -> Iterator[tuple[str, dict[str, str], Path]]:
    """Starts a server with its own PREFECT_HOME; yields its API URL, an environment for client
    processes (no inherited PREFECT_API_*) and its log file; stops it (its process group only).
    With `ui` it also serves the web UI, pointed at this port's API."""
    url = f"http://127.0.0.1:{free_port()}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_HOME", "PREFECT_UI"))}
    ui_env = {"PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": url} if ui else {"PREFECT_UI_ENABLED": "false"}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", **ui_env, **env_extra)
    log = home / "server.log"
    port = url.rsplit(":", 1)[1].split("/")[0]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", port],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        poll("healthy server", lambda: healthy(url), limit_s=120.0, proc=proc, log=log)
        yield url, env, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
