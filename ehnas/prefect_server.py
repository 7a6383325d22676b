"""The Prefect API that `ehnas run` talks to, and what a killed run leaves behind.

Without ``PREFECT_API_URL``, Prefect would start a temporary uvicorn server itself and stop it at
interpreter exit; ``kill -9`` skips that, and the server lives on (parent 1, still listening).
So EHNAS starts that server itself, the way Prefect does (same app, same settings), with three
differences:

* the server is a child that the kernel kills when its parent dies (Linux ``PR_SET_PDEATHSIG``);
* its listening socket is bound by the parent to port 0 and handed over (``uvicorn --fd``), so
  two runs started at the same instant can never pick the same port;
* its pid and port are recorded under ``PREFECT_HOME/ehnas-servers/``; the next start kills a
  recorded server whose parent is gone (the fallback where ``PR_SET_PDEATHSIG`` does not exist).

Every flow run of ours is tagged with its process (host, pid, start time). On the next start,
flow and task runs still RUNNING or PENDING whose process is gone are set CRASHED.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

LOCAL_TAG = "ehnas.local"  # every flow run started by `ehnas run`/`resume`
PROC_TAG = "ehnas.proc="  # + host:pid:start time of the process that ran it
_PR_SET_PDEATHSIG = 1


def _process_tag(pid: int | None = None) -> str:
    proc = psutil.Process(pid)
    return f"{PROC_TAG}{socket.gethostname()}:{proc.pid}:{int(proc.create_time())}"


def _alive(pid: int, started: int) -> bool:
    """Whether process `pid` exists and is the one that started at `started` (not a reused pid)."""
    try:
        return int(psutil.Process(pid).create_time()) == started
    except psutil.Error:
        return False


# looked up before any fork: the hook below runs in the forked child, where loading is unsafe
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with_parent(parent: int) -> None:
    """preexec hook: the kernel sends SIGKILL to this child when the thread that started it ends
    (`temporary_server` is entered from the main thread); a parent already gone ends it now."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)


def _records(home: Path) -> Path:
    folder = home / "ehnas-servers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def reap_orphans(home: Path) -> list[int]:
    """Kills recorded temporary servers whose parent process is gone; returns their pids."""
    reaped = []
    for record in _records(home).glob("*.json"):
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            record.unlink(missing_ok=True)
            continue
        if _alive(info["parent_pid"], info["parent_started"]):
            continue  # a live run's server
        if _alive(info["pid"], info["started"]):
            with contextlib.suppress(psutil.Error):
                psutil.Process(info["pid"]).kill()
                reaped.append(info["pid"])
        record.unlink(missing_ok=True)
    return reaped


def _listening_socket() -> socket.socket:
    """A socket on 127.0.0.1 at a port the kernel picks (unique while the socket is open)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _spawn(sock: socket.socket) -> subprocess.Popen:
    """Starts Prefect's API app under uvicorn on `sock`, as Prefect's own temporary server does."""
    import prefect
    from prefect.settings import get_current_settings

    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    env.pop("PREFECT_API_URL", None)
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(prefect.__module_path__.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--fd",
        str(sock.fileno()),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    return subprocess.Popen(args, env=env, pass_fds=(sock.fileno(),), preexec_fn=functools.partial(_die_with_parent, os.getpid()))  # noqa: PLW1509


def _wait_healthy(url: str, proc: subprocess.Popen, limit_s: float) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the temporary Prefect server exited with code {proc.returncode} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        time.sleep(0.2)  # polling a starting server
    raise RuntimeError(
        f"the temporary Prefect server did not answer at {url} within {limit_s:.0f} s "
        "(raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS on a busy machine)"
    )


def _drain_clients() -> None:
    """Sends the log lines and events still queued in this process before their server stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # a worker that never started has nothing to send
            worker.drain_all(timeout=10)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def temporary_server(home: Path) -> Iterator[str]:
    """Runs a Prefect API server for this process (dies with it); yields its API URL."""
    reap_orphans(home)
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    sock = _listening_socket()
    proc = _spawn(sock)
    port = sock.getsockname()[1]
    sock.close()  # the child holds its own copy of the socket
    me = psutil.Process()
    record = _records(home) / f"{proc.pid}.json"
    record.write_text(
        json.dumps(
            {
                "pid": proc.pid,
                "started": int(psutil.Process(proc.pid).create_time()),
                "port": port,
                "parent_pid": me.pid,
                "parent_started": int(me.create_time()),
            }
        )
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, proc, float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
        yield url
    finally:
        _drain_clients()
        _stop(proc)
        record.unlink(missing_ok=True)


def crash_orphaned_runs() -> list[str]:
    """Sets CRASHED every RUNNING or PENDING flow or task run of ours whose process is gone.

    Returns:
        The names of the flow runs that were set CRASHED.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
        TaskRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    live = [StateType.RUNNING, StateType.PENDING]
    crashed = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live)), tags=FlowRunFilterTags(all_=[LOCAL_TAG]))
        )
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=live)), tags=TaskRunFilterTags(all_=[LOCAL_TAG]))
        )
        for run in runs:
            if _orphaned(run.tags):
                client.set_flow_run_state(run.id, Crashed(message="its ehnas process ended without finishing it"), force=True)
                crashed.append(run.name)
        for task in tasks:
            if _orphaned(task.tags):
                client.set_task_run_state(task.id, Crashed(message="its ehnas process ended without finishing it"), force=True)
    return crashed


def _orphaned(tags: list[str]) -> bool:
    """Whether the tags name a process of this host that no longer runs."""
    for tag in tags:
        if tag.startswith(PROC_TAG):
            host, pid, started = tag[len(PROC_TAG) :].rsplit(":", 2)
            return host == socket.gethostname() and not _alive(int(pid), int(started))
    return False


@contextlib.contextmanager
def local_prefect() -> Iterator[str]:
    """The Prefect API for one `ehnas run`: the configured ``PREFECT_API_URL``, else a temporary
    server of this process under ``PREFECT_HOME``; stale runs of ours are set CRASHED first, and the flow
    runs started in the block carry this process's tags.

    Must be entered after `flows.pipeline.prefect_settings` (which sets ``PREFECT_HOME``).

    Yields:
        The API URL.
    """
    from prefect import tags
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        get_current_settings,
        temporary_settings,
    )

    with contextlib.ExitStack() as stack:
        url = get_current_settings().api.url
        if url is None:
            url = stack.enter_context(temporary_server(Path(PREFECT_HOME.value())))
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))
        for name in crash_orphaned_runs():
            print(f"flow run {name} of a killed ehnas process: set CRASHED", file=sys.stderr)
        stack.enter_context(tags(LOCAL_TAG, _process_tag()))
        yield url
