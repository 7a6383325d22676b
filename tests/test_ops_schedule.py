"""The project's prefect.yaml deployed on a real `prefect server start`: its cron schedule creates
SCHEDULED runs (Prefect 3.8's scheduler fails on SQLAlchemy 2.1, hence the pin), and a process
worker runs one flow run of the deployment to completion on a tiny config."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "space": {"min_depth": 4, "max_depth": 4},
    "population": {"size": 3},
    "pruning": {"layers": []},
    "search": {"generations": 0},
    "training": {"top_k": 1, "epochs": 1, "max_batches_per_epoch": 1},
    "registry": {"enabled": False},
    "data": {"proxy_batch": 16},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _poll(what: str, check, limit_s: float = 240.0, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"prefect server exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:] if log else ''}")
        with_result = check()
        if with_result:
            return with_result
        time.sleep(1)  # polling a server, not timing anything
    pytest.fail(f"no {what} after {limit_s} s:\n{log.read_text()[-3000:] if log else ''}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def server(tmp_path):
    home = tmp_path / "prefect_home"
    home.mkdir()
    url = f"http://127.0.0.1:{_free_port()}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_HOME"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PREFECT_CLI_PROMPT="false",
        PYTHONPATH=str(ROOT),
    )
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
        _poll("healthy server", lambda: _healthy(url), proc=proc, log=log)
        yield url, {**env, "PREFECT_API_URL": url}, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group only
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _prefect(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _runs(url: str, deployment_id: str, state: str) -> list[dict]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "flow_runs": {"state": {"type": {"any_": [state]}}}}
    return httpx.post(f"{url}/flow_runs/filter", json=body, timeout=30).json()


def test_deployed_schedule_creates_runs_and_a_worker_completes_one(server, tmp_path):
    url, env, log = server
    _prefect(env, "work-pool", "create", "ehnas-process", "--type", "process")
    _prefect(env, "deploy", "--all")  # the project's prefect.yaml, from the repository root
    deployment = httpx.get(f"{url}/deployments/name/ehnas-pipeline/nightly", timeout=30).json()
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 2 * * *"]

    scheduled = _poll("SCHEDULED run of the cron schedule", lambda: _runs(url, deployment["id"], "SCHEDULED"), log=log)
    assert all(r["expected_start_time"].endswith(("T02:00:00Z", "T02:00:00+00:00")) for r in scheduled), scheduled

    config = {"run_name": "scheduled-tiny", "runs_root": str(tmp_path / "runs"), **TINY}
    run = httpx.post(f"{url}/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"config": config}}, timeout=30).json()
    _prefect(env, "worker", "start", "--pool", "ehnas-process", "--run-once", timeout=600)
    state = httpx.get(f"{url}/flow_runs/{run['id']}", timeout=30).json()["state_type"]
    assert state == "COMPLETED"
    assert (tmp_path / "runs" / "scheduled-tiny" / "09_registry.parquet").exists()
