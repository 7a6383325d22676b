"""The pipeline against a real `prefect server start` on 127.0.0.1, read back through its REST API."""

from __future__ import annotations

import json
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
RUN = (
    "import json, sys; from tasks.config import load_config; from flows.pipeline import nas_pipeline; "
    "print('RESULT ' + json.dumps(nas_pipeline(load_config(None, sys.argv[1:]))))"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)  # polling a starting server, not timing anything
    pytest.fail(f"prefect server not healthy after {limit_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect_home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_UI_ENABLED="false")
    log = home / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, proc, log)
        yield url, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group only
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_flow_runs_on_a_real_server_and_reports_through_the_api(server, tmp_path):
    url, env = server
    args = [
        "run_name=srv",
        f"runs_root={tmp_path}",
        "space.min_depth=4",
        "space.max_depth=4",
        "population.size=3",
        "pruning.layers=[]",
        "search.generations=0",
        "training.top_k=1",
        "training.epochs=1",
        "training.max_batches_per_epoch=1",
        "registry.enabled=false",
        "data.proxy_batch=16",
    ]
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args], cwd=ROOT, env={**env, "PREFECT_API_URL": url}, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert Path(result["run_dir"]).name == "srv"
    runs = httpx.post(f"{url}/flow_runs/filter", json={"flow_runs": {"name": {"any_": ["srv"]}}}, timeout=30).json()
    assert [r["state_type"] for r in runs] == ["COMPLETED"]
    tasks = httpx.post(f"{url}/task_runs/filter", json={"flow_runs": {"name": {"any_": ["srv"]}}}, timeout=30).json()
    assert tasks and all(t["state_type"] == "COMPLETED" for t in tasks)
    arts = httpx.post(f"{url}/artifacts/filter", json={"artifacts": {"key": {"any_": ["srv-summary", "srv-population-progress"]}}}, timeout=30).json()
    by_key = {a["key"]: a for a in arts}
    assert "EHNAS run `srv`" in by_key["srv-summary"]["data"]
    assert by_key["srv-population-progress"]["type"] == "progress" and float(by_key["srv-population-progress"]["data"]) == 100.0
