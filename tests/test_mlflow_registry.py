"""MLflow: parent/finalist runs are reused on resume, the champion registers once and loads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

mlflow = pytest.importorskip("mlflow")

from tasks import mlflow_registry as reg  # noqa: E402  (after the importorskip)


def test_default_tracking_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert reg.default_tracking_uri(tmp_path / "runs") == f"sqlite:///{(tmp_path / 'runs').resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert reg.default_tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_safe_params_drop_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHNAS_LLM_API_KEY", "zz-very-private-value")
    params = {"llm.api_key": "abc", "auth_header": "x", "llm.model": "qwen", "note": "Bearer abcdef",
              "echo": "uses zz-very-private-value", "raw": "sk-0123456789abcdef", "depth": 4, "nested": {"a": 1}, "none": None}
    assert reg.safe_params(params) == {"llm.model": "qwen", "depth": "4", "nested": '{"a": 1}'}
    assert reg.model_name_for("cifar10 npz/x") == "ehnas-cifar10-npz-x"


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def test_runs_registration_and_loading(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    parent = reg.start_parent_run(uri, "ehnas-test", "digits-hybrid-abc", {"training.epochs": 2, "llm.api_key": "sk-secret123456"}, {"config_hash": "abc"})
    assert reg.start_parent_run(uri, "ehnas-test", "digits-hybrid-abc", {"training.epochs": 2, "seed": 1}, {}) == parent
    client = mlflow.MlflowClient(uri)
    assert client.get_run(parent).data.params == {"training.epochs": "2", "seed": "1"}  # no secret, nothing twice
    reg.log_parent_metrics(uri, parent, {"search_best_fitness": 0.5}, step=1)

    history = [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "val_accuracy": 0.4}, {"epoch": 2, "train_loss": 1.0, "val_loss": 1.2, "val_accuracy": 0.6}]
    metrics = {"val_accuracy": 0.6, "macro_f1": 0.55, "per_class": {"f1": [0.5] * 10}, "confusion_matrix": [[1]]}
    finalist = reg.log_finalist_run(uri, parent, "a1b2c3", {"arch": "cnn > vit"}, metrics, history)
    assert reg.log_finalist_run(uri, parent, "a1b2c3", {"arch": "cnn > vit"}, metrics, []) == finalist
    run = client.get_run(finalist)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.metrics["val_accuracy"] == 0.6
    assert [m.value for m in client.get_metric_history(finalist, "epoch_val_accuracy")] == [0.4, 0.6]

    model, example = tiny_model(), np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    (tmp_path / "07_search.parquet").write_bytes(b"PAR1")  # any file: artifacts are copied as they are
    args = dict(tracking_uri=uri, experiment="ehnas-test", parent_run_id=parent, model_name="ehnas-digits", model=model,
                input_example=example, arch_id="a1b2c3", config_hash="abc", metrics={"val_accuracy": 0.6, "bad": float("nan")},
                params={"arch": "cnn > vit", "token": "t"}, artifacts=[tmp_path / "07_search.parquet", tmp_path / "missing.parquet"])
    first = reg.register_champion(**args)
    assert first == {"model_uri": "models:/ehnas-digits@champion", "version": "1", "run_id": first["run_id"], "reused": False}
    champion_run = client.get_run(first["run_id"])
    assert champion_run.data.tags["mlflow.parentRunId"] == parent and "token" not in champion_run.data.params
    assert [a.path for a in client.list_artifacts(first["run_id"]) if a.path.endswith(".parquet")] == ["07_search.parquet"]
    again = reg.register_champion(**args)
    assert again["reused"] and again["version"] == "1" and len(client.search_model_versions("name = 'ehnas-digits'")) == 1

    x = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)
    expected = model.eval()(torch.from_numpy(x)).detach().numpy()
    loaded = reg.load_champion(uri, "ehnas-digits")
    assert np.allclose(loaded(torch.from_numpy(x)).detach().numpy(), expected, atol=1e-5)
    pyfunc = mlflow.pyfunc.load_model("models:/ehnas-digits@champion")
    assert np.allclose(np.asarray(pyfunc.predict(x)), expected, atol=1e-5)

    other = reg.register_champion(**{**args, "config_hash": "def"})
    assert other["version"] == "2" and not other["reused"]
    assert str(client.get_model_version_by_alias("ehnas-digits", "champion").version) == "2"
    reg.finish_run(uri, parent)
    assert client.get_run(parent).info.status == "FINISHED"
