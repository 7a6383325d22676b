"""The project's prefect.yaml deployed on a real `prefect server start`: its cron schedule creates
SCHEDULED runs (Prefect 3.8's scheduler fails on SQLAlchemy 2.1, hence the pin), and a process
worker runs one flow run of the deployment to completion on a tiny config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tasks.config import parse_overrides
from tests.prefect_server import poll, prefect_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(tmp_path):
    home = tmp_path / "prefect_home"
    home.mkdir()
    extra = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5", "PREFECT_CLI_PROMPT": "false", "PYTHONPATH": str(ROOT)}
    with prefect_server(home, **extra) as (url, env, log):
        yield url, {**env, "PREFECT_API_URL": url}, log


def _prefect(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _runs(url: str, deployment_id: str, state: str) -> list[dict]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "flow_runs": {"state": {"type": {"any_": [state]}}}}
    return httpx.post(f"{url}/flow_runs/filter", json=body, timeout=30).json()


def test_deployed_schedule_creates_runs_and_a_worker_completes_one(server, tmp_path, tiny_overrides):
    url, env, log = server
    _prefect(env, "work-pool", "create", "ehnas-process", "--type", "process")
    _prefect(env, "deploy", "--all")  # the project's prefect.yaml, from the repository root
    deployment = httpx.get(f"{url}/deployments/name/ehnas-pipeline/nightly", timeout=30).json()
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 2 * * *"]

    scheduled = poll("SCHEDULED run of the cron schedule", lambda: _runs(url, deployment["id"], "SCHEDULED"), log=log)
    assert all(r["expected_start_time"].endswith(("T02:00:00Z", "T02:00:00+00:00")) for r in scheduled), scheduled

    config = {"run_name": "scheduled-tiny", "runs_root": str(tmp_path / "runs"), **parse_overrides(tiny_overrides)}
    run = httpx.post(f"{url}/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"config": config}}, timeout=30).json()
    _prefect(env, "worker", "start", "--pool", "ehnas-process", "--run-once", timeout=600)
    state = httpx.get(f"{url}/flow_runs/{run['id']}", timeout=30).json()["state_type"]
    assert state == "COMPLETED"
    assert (tmp_path / "runs" / "scheduled-tiny" / "09_registry.parquet").exists()


HOLD = "import sys; from ehnas.runlock import run_lock\nwith run_lock(sys.argv[1]):\n    print('held', flush=True); sys.stdin.readline()\n"


def test_a_deployment_run_takes_the_run_lock_and_runs_the_preflight(server, tmp_path, tiny_overrides):
    url, env, _log = server
    _prefect(env, "work-pool", "create", "ehnas-process", "--type", "process")
    _prefect(env, "deploy", "--all")
    deployment = httpx.get(f"{url}/deployments/name/ehnas-pipeline/nightly", timeout=30).json()
    runs_root = tmp_path / "runs"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(runs_root / "held")], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"  # an `ehnas run` of that name, as far as the lock can tell
    tiny = parse_overrides(tiny_overrides)
    configs = {
        "locked": {**tiny, "run_name": "held", "runs_root": str(runs_root)},
        "bad-data": {**tiny, "run_name": "bad-data", "runs_root": str(runs_root), "data": {"kind": "image_folder", "path": str(tmp_path / "absent")}},
    }
    ids = {}
    try:
        for key, config in configs.items():  # one at a time: the deployment's concurrency limit is 1
            body = {"parameters": {"config": config}}
            ids[key] = httpx.post(f"{url}/deployments/{deployment['id']}/create_flow_run", json=body, timeout=30).json()["id"]
            _prefect(env, "worker", "start", "--pool", "ehnas-process", "--run-once", timeout=600)
    finally:
        holder.communicate("\n")
    states = {key: httpx.get(f"{url}/flow_runs/{run_id}", timeout=30).json()["state"] for key, run_id in ids.items()}
    assert states["locked"]["type"] == "FAILED" and f"run 'held' is already running (pid {holder.pid} on " in states["locked"]["message"], states
    assert states["bad-data"]["type"] == "FAILED", states
    assert "PreflightFailed: data (image_folder, " in states["bad-data"]["message"] and "does not exist" in states["bad-data"]["message"], states
    assert not (runs_root / "held" / "config.json").exists() and not (runs_root / "bad-data").exists()  # refused before any step
