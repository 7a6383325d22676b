"""The pipeline against a real `prefect server start` on 127.0.0.1, read back through its REST API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.prefect_server import prefect_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
RUN = (
    "import json, sys; from tasks.config import load_config; from flows.pipeline import nas_pipeline; "
    "print('RESULT ' + json.dumps(nas_pipeline(load_config(None, sys.argv[1:]))))"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect_home")) as (url, env, _log):
        yield url, env


def test_flow_runs_on_a_real_server_and_reports_through_the_api(server, tmp_path, tiny_overrides):
    url, env = server
    args = ["run_name=srv", f"runs_root={tmp_path}", *tiny_overrides]
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
