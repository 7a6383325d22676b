"""One writer per run name, and nothing outlives a killed run: real `ehnas run` processes,
their real temporary Prefect servers on 127.0.0.1, `kill -9`, and the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from ehnas.exit_codes import ExitCode
from ehnas.runlock import LOCK_NAME, RunLocked, run_lock
from tests.test_edge_config import flat

ROOT = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys; from ehnas.runlock import run_lock\n"
    "with run_lock(sys.argv[1], wait=sys.argv[2] == 'wait'):\n"
    "    print('held', flush=True); sys.stdin.readline()\n"
)
# what the next `ehnas run` does first (lock, settings, Prefect API), then the states it sees
NEXT_START = (
    "import json, sys; from ehnas.runlock import cli_run_lock; from flows.pipeline import prefect_settings\n"
    "from ehnas.prefect_server import local_prefect; from prefect import get_client\n"
    "with cli_run_lock(sys.argv[1]), prefect_settings(home='.prefect'), local_prefect():\n"
    "    with get_client(sync_client=True) as c:\n"
    "        print('STATES ' + json.dumps({r.name: r.state_type.value for r in c.read_flow_runs()}))\n"
)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_HOME", "MLFLOW_TRACKING"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PREFECT_HOME=str(tmp_path / ".prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
    )
    return env


def _ehnas(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ehnas.cli import app; app()", *args]


def _holder(run_dir: Path, env: dict[str, str], mode: str = "fail") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), mode], env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    return proc


def test_lock_is_exclusive_across_processes_and_dies_with_its_holder(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    holder = _holder(run_dir, _env(tmp_path))
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked, match=rf"run 'r1' is already running \(pid {holder.pid} on "), run_lock(run_dir):
        pass
    holder.kill()  # kill -9: no cleanup code runs in the holder
    holder.wait()
    with run_lock(run_dir) as lock_file:
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    assert lock_file.name == LOCK_NAME


def test_waiting_writer_gets_the_lock_when_the_holder_ends(tmp_path):
    env, run_dir = _env(tmp_path), tmp_path / "runs" / "r2"
    first = _holder(run_dir, env)
    assert first.stdout.readline().strip() == "held"
    second = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), "wait"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said = second.stderr.readline()  # said before it blocks, so this read cannot hang on a silent waiter
    assert f"run 'r2' is already running (pid {first.pid} on " in said and "waiting for it to end (--wait)" in said, said
    acquired = threading.Event()
    threading.Thread(target=lambda: second.stdout.readline() == "held\n" and acquired.set(), daemon=True).start()
    assert not acquired.wait(1.0)  # blocked behind the first writer (it never gets there while the lock is held)
    first.communicate("\n")
    assert acquired.wait(60)
    second.communicate("\n")
    assert second.returncode == 0


def test_a_resume_is_not_told_to_choose_another_run_name(tmp_path):
    run_dir = tmp_path / "runs" / "r3"
    holder = _holder(run_dir, _env(tmp_path))
    assert holder.stdout.readline().strip() == "held"
    try:
        with pytest.raises(RunLocked) as for_run, run_lock(run_dir):
            pass
        with pytest.raises(RunLocked) as for_resume, run_lock(run_dir, other_name=""):
            pass
    finally:
        holder.communicate("\n")
    assert str(for_run.value).endswith("wait for it to finish, pass --wait to queue behind it, or choose another --run-name")
    assert str(for_resume.value).endswith("wait for it to finish or pass --wait to queue behind it")
    assert "--run-name" not in str(for_resume.value)


def _wait_for(what: str, check, proc: subprocess.Popen, limit_s: float = 300.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ehnas run exited ({proc.returncode}) before {what}:\n{proc.stdout.read()[-3000:]}")
        found = check()
        if found:
            return found
        time.sleep(0.5)  # polling a starting process, not timing anything
    pytest.fail(f"no {what} after {limit_s} s")


def _ends(proc: psutil.Process, limit_s: float = 60.0) -> bool:
    """Whether `proc` ends (or is left a zombie for init to reap) within `limit_s`."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)  # polling the process table
    return False


def _server_record(home: Path) -> dict | None:
    records = list((home / "ehnas-servers").glob("*.json")) if (home / "ehnas-servers").exists() else []
    return json.loads(records[0].read_text()) if records else None


def _running_flow(port: int) -> bool:
    try:
        runs = httpx.post(
            f"http://127.0.0.1:{port}/api/flow_runs/filter", json={"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}}, timeout=10
        ).json()
    except httpx.HTTPError:
        return False
    return any(r["name"] == "k1" for r in runs)


@pytest.mark.slow
def test_kill_9_leaves_no_server_and_the_next_start_marks_the_run_crashed(tmp_path, tiny_overrides):
    env, home = _env(tmp_path), tmp_path / ".prefect"
    args = ["run", "--run-name", "k1", *[a for item in tiny_overrides for a in ("--set", item)]]
    first = subprocess.Popen(
        _ehnas(*args), env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        record = _wait_for("temporary server", lambda: _server_record(home), first)
        assert record["parent_pid"] == first.pid
        _wait_for("RUNNING flow run", lambda: _running_flow(record["port"]), first)
        os.kill(first.pid, signal.SIGSTOP)  # frozen mid-run (its server runs on), so the run cannot finish first

        second = subprocess.run(_ehnas(*args), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
        assert second.returncode == ExitCode.LOCKED
        message = flat(second.stderr)  # one boxed message
        assert f"run 'k1' is already running (pid {first.pid} on " in message and "Traceback" not in message, second.stderr
        assert "pass --wait" in message

        server = psutil.Process(record["pid"])
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert _ends(server), f"temporary server {record['pid']} outlived its killed parent"
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    nxt = subprocess.run(
        [sys.executable, "-c", NEXT_START, str(tmp_path / "runs" / "k1")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    assert "flow run k1 of a killed ehnas process: set CRASHED" in nxt.stderr
    states = json.loads(nxt.stdout.split("STATES ", 1)[1].splitlines()[0])
    assert states["k1"] == "CRASHED"
    assert "RUNNING" not in states.values()
    assert _server_record(home) is None  # the next start stopped its own server and removed its record


@pytest.mark.slow
def test_next_start_reaps_a_recorded_server_whose_parent_is_gone(tmp_path):
    from ehnas.prefect_server import reap_orphans

    records = tmp_path / "ehnas-servers"
    records.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a parent that no longer exists
    orphan = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    kept = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    me = psutil.Process()

    def record(proc: subprocess.Popen, parent: int, parent_started: int) -> None:
        started = int(psutil.Process(proc.pid).create_time())
        (records / f"{proc.pid}.json").write_text(
            json.dumps({"pid": proc.pid, "started": started, "port": 1, "parent_pid": parent, "parent_started": parent_started})
        )

    record(orphan, gone.pid, 0)
    record(kept, me.pid, int(me.create_time()))  # a live run's server stays
    try:
        assert reap_orphans(tmp_path) == [orphan.pid]
        assert orphan.wait(timeout=60) == -signal.SIGKILL
        assert kept.poll() is None and sorted(p.name for p in records.iterdir()) == [f"{kept.pid}.json"]
    finally:
        kept.communicate(b"\n")
        if orphan.poll() is None:
            orphan.kill()
