"""Registration against real MLflow stores: one version per weights even from two processes at once
on a fresh database, and a champion run left RUNNING by a kill is ended, not joined by another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from tasks import mlflow_registry as reg  # noqa: E402  # after importorskip, on purpose
from tasks.mlflow_guard import keep_oldest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# one registration of the same tiny weights (seeded), under a config hash given on the command line
REGISTER = """
import sys, numpy as np, torch
from torch import nn
from tasks import mlflow_registry as reg
torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
sys.stdin.readline()  # both processes start registering together
out = reg.register_champion(tracking_uri=sys.argv[1], experiment="ehnas-test", parent_run_id=None, model_name="ehnas-race",
                            model=model, input_example=np.zeros((2, 1, 4, 4), np.float32), arch_id="a1", config_hash=sys.argv[2],
                            metrics={}, params={})
print("VERSION", out["version"])
"""


def _uri(folder: Path) -> str:
    return f"sqlite:///{folder.resolve()}/mlflow.db"


@pytest.mark.slow
def test_two_processes_on_a_fresh_database_register_one_version(tmp_path):
    uri = _uri(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER, uri, config],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config in ("run-a", "run-b")
    ]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    versions = mlflow.MlflowClient(uri, registry_uri=uri).search_model_versions("name = 'ehnas-race'")
    assert len(versions) == 1
    assert [out.split("VERSION ")[1].strip() for out, _ in outs] == [str(versions[0].version)] * 2


def test_concurrent_duplicate_resolves_to_the_oldest_version(tmp_path):
    uri = _uri(tmp_path)
    client = reg.client_for(uri)
    run = client.create_run(client.create_experiment("dup"))
    client.create_registered_model("ehnas-dup")
    identity = {reg.ARCH_TAG: "a1", reg.WEIGHTS_TAG: "00ff"}
    for config in ("c1", "c2"):  # what two racing writers leave: two versions of the same weights
        client.create_model_version("ehnas-dup", f"{run.info.artifact_uri}/model", run.info.run_id, tags={**identity, reg.CONFIG_TAG: config})
    assert keep_oldest(client, "ehnas-dup", identity, "2") == "1"
    assert [str(v.version) for v in client.search_model_versions("name = 'ehnas-dup'")] == ["1"]
    assert keep_oldest(client, "ehnas-dup", identity, "1") == "1"


def test_stale_running_champion_run_is_killed_not_joined(tmp_path):
    import numpy as np
    import torch
    from torch import nn

    uri = _uri(tmp_path)
    parent = reg.start_parent_run(uri, "ehnas-test", "resumed", {}, {})
    client = reg.client_for(uri)
    experiment_id = client.get_run(parent).info.experiment_id
    tags = {reg.ARCH_TAG: "a1", reg.CONFIG_TAG: "c1", "ehnas.kind": "champion", reg.PARENT_TAG: parent}
    stale = client.create_run(experiment_id, run_name="champion-a1", tags=tags).info.run_id  # a kill during log_model
    assert reg.start_parent_run(uri, "ehnas-test", "resumed", {}, {}) == parent  # resume reuses the parent run
    torch.manual_seed(0)
    out = reg.register_champion(
        tracking_uri=uri,
        experiment="ehnas-test",
        parent_run_id=parent,
        model_name="ehnas-stale",
        model=nn.Sequential(nn.Flatten(), nn.Linear(16, 3)),
        input_example=np.zeros((2, 1, 4, 4), np.float32),
        arch_id="a1",
        config_hash="c1",
        metrics={},
        params={},
    )
    assert client.get_run(stale).info.status == "KILLED"
    champions = client.search_runs([experiment_id], filter_string=f"tags.`{reg.PARENT_TAG}` = '{parent}'")
    assert sorted(r.info.status for r in champions) == ["FINISHED", "KILLED"]
    assert out["run_id"] != stale and client.get_run(out["run_id"]).info.status == "FINISHED"
