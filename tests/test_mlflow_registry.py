"""MLflow: parent/finalist runs are reused on resume, the champion registers once and loads back."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

mlflow = pytest.importorskip("mlflow")

from tasks import mlflow_registry as reg  # noqa: E402  (after the importorskip)
from tasks.mlflow_pipeline import register_pipeline_run  # noqa: E402


def test_default_tracking_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert reg.default_tracking_uri(tmp_path / "runs") == f"sqlite:///{(tmp_path / 'runs').resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert reg.default_tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_safe_params_drop_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHNAS_LLM_API_KEY", "zz-very-private-value")
    params = {
        "llm.api_key": "abc",
        "auth_header": "x",
        "llm.model": "qwen",
        "note": "Bearer abcdef",
        "echo": "uses zz-very-private-value",
        "raw": "sk-0123456789abcdef",
        "depth": 4,
        "nested": {"a": 1},
        "none": None,
    }
    assert reg.safe_params(params) == {"llm.model": "qwen", "depth": "4", "nested": '{"a": 1}'}
    assert reg.model_name_for("cifar10 npz/x") == "ehnas-cifar10-npz-x"


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One tracking database for the module: creating its tables costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow').resolve()}/mlflow.db"


def test_runs_registration_and_loading(uri: str, tmp_path: Path) -> None:
    parent = reg.start_parent_run(
        uri, "ehnas-test", "digits-hybrid-abc", {"training.epochs": 2, "llm.api_key": "sk-secret123456"}, {"config_hash": "abc"}
    )
    assert reg.start_parent_run(uri, "ehnas-test", "digits-hybrid-abc", {"training.epochs": 2, "seed": 1}, {}) == parent
    client = mlflow.MlflowClient(uri)
    assert client.get_run(parent).data.params == {"training.epochs": "2", "seed": "1"}  # no secret, nothing twice
    reg.log_parent_metrics(uri, parent, {"search_best_fitness": 0.5}, step=1)

    history = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "val_accuracy": 0.4},
        {"epoch": 2, "train_loss": 1.0, "val_loss": 1.2, "val_accuracy": 0.6},
    ]
    metrics = {"val_accuracy": 0.6, "macro_f1": 0.55, "per_class": {"f1": [0.5] * 10}, "confusion_matrix": [[1]]}
    finalist = reg.log_finalist_run(uri, parent, "a1b2c3", {"arch": "cnn > vit"}, metrics, history)
    assert reg.log_finalist_run(uri, parent, "a1b2c3", {"arch": "cnn > vit"}, metrics, []) == finalist
    run = client.get_run(finalist)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.metrics["val_accuracy"] == 0.6
    assert [m.value for m in client.get_metric_history(finalist, "epoch_val_accuracy")] == [0.4, 0.6]

    model, example = tiny_model(), np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    (tmp_path / "07_search.parquet").write_bytes(b"PAR1")  # any file: artifacts are copied as they are
    args = dict(
        tracking_uri=uri,
        experiment="ehnas-test",
        parent_run_id=parent,
        model_name="ehnas-digits",
        model=model,
        input_example=example,
        arch_id="a1b2c3",
        config_hash="abc",
        metrics={"val_accuracy": 0.6, "bad": float("nan")},
        params={"arch": "cnn > vit", "token": "t"},
        artifacts=[tmp_path / "07_search.parquet", tmp_path / "missing.parquet"],
    )
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

    other = reg.register_champion(**{**args, "config_hash": "def"})  # another config, the same weights: the same version
    assert other["version"] == "1" and other["reused"]
    retrained = tiny_model()
    with torch.no_grad():
        next(retrained.parameters()).add_(0.5)  # same arch and config, new weights (a redone training)
    third = reg.register_champion(**{**args, "config_hash": "def", "model": retrained})
    assert third["version"] == "2" and not third["reused"]
    assert str(client.get_model_version_by_alias("ehnas-digits", "champion").version) == "2"
    assert reg.register_champion(**{**args, "config_hash": "def", "model": retrained})["version"] == "2"
    reg.finish_run(uri, parent)
    assert client.get_run(parent).info.status == "FINISHED"


WINNER = "sequential:cnn(planes=16,stride=2,cardinality=1,base_width=32) > residual:cnn(planes=16,stride=1,cardinality=1,base_width=32) > residual:cnn(planes=32,stride=1,cardinality=2,base_width=32) > sequential:cnn(planes=16,stride=1,cardinality=1,base_width=32)"
# CNN blocks only: saving attention and scan blocks with torch.export is what makes logging slow


def test_register_pipeline_run(uri: str, tmp_path: Path) -> None:
    """A minimal finished run folder (config, search and training steps, winner weights)."""
    import pandas as pd

    from tasks.config import PipelineConfig
    from tasks.data_ref import DataRef
    from tasks.run_folder import RunFolder
    from tasks.spaces import space_from_dict

    config = PipelineConfig(runs_root=str(tmp_path), data={"kind": "digits", "max_items": 60}, registry={"tracking_uri": uri})
    run = RunFolder.create(config)
    run_dir, load_config = run.root, lambda _: run.config()
    space, data = space_from_dict(run.space_dict()), DataRef.of(config).load()
    torch.manual_seed(0)
    model = space.build_model(space.from_string(WINNER), input_shape=data.input_shape, num_classes=data.num_classes)
    torch.save(model.state_dict(), run_dir / "w.pt")
    pd.DataFrame({"generation": [0, 0, 1], "fitness": [1.0, 2.0, 3.0], "state": ["ok"] * 3}).to_parquet(run_dir / "07_search.parquet")
    winner = {
        "arch_id": "w1",
        "arch": WINNER,
        "rank": 1,
        "fitness": 3.0,
        "params": 1,
        "flops": 2,
        "val_accuracy": 0.5,
        "val_loss": 1.0,
        "macro_f1": 0.4,
        "epochs_run": 2,
        "seconds": 1.0,
        "state": "ok",
        "error": None,
        "device": "cpu",
        "weights": str(run_dir / "w.pt"),
        "history": json.dumps([{"epoch": e, "train_loss": 2.0 / e, "val_loss": 1.5 / e, "val_accuracy": 0.25 * e} for e in (1, 2)]),
    }
    pd.DataFrame([winner, {**winner, "arch_id": "w2", "rank": 2, "state": "failed", "weights": None}]).to_parquet(run_dir / "08_training.parquet")
    steps = [str(run_dir / "07_search.parquet"), str(run_dir / "08_training.parquet"), str(run_dir / "09_registry.parquet")]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = register_pipeline_run(run_dir=run_dir, config=load_config(run_dir), winner=winner, steps=steps)
    noise = ("dataset source can be interpreted", "Add type hints to the `predict` method", "torch.jit")
    assert not [str(w.message) for w in caught if any(n in str(w.message) for n in noise)]  # the run log carries no library noise
    name = config.model_name()
    assert out["state"] == "ok" and out["model_uri"] == f"models:/{name}@champion" and out["tracking_uri"] == uri
    assert register_pipeline_run(run_dir=run_dir, config=load_config(run_dir), winner=winner, steps=steps)["version"] == out["version"]
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(out["run_id"]).data.tags["mlflow.parentRunId"]
    assert [m.value for m in client.get_metric_history(parent, "search_best_so_far")] == [2.0, 3.0]
    children = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.info.run_name for r in children) == ["champion-w1", "finalist-w1", "finalist-w2"]
    for finalist in (r for r in children if r.info.run_name.startswith("finalist-")):  # registered twice, each point logged once
        assert [(m.step, m.value) for m in client.get_metric_history(finalist.info.run_id, "epoch_val_accuracy")] == [(1, 0.25), (2, 0.5)]
        assert [m.value for m in client.get_metric_history(finalist.info.run_id, "val_accuracy")] == [0.5]
    x = data.val_x[:3]
    expected = model.eval()(x).detach().numpy()
    assert np.allclose(reg.load_champion(uri, name)(x).detach().numpy(), expected, atol=1e-5)
    _grayscale_in_either_shape(reg.load_champion(uri, name, flavor="pyfunc"), data, expected.argmax(axis=1))

    # a later winner that validates worse on the same data is registered as the challenger
    torch.manual_seed(1)
    torch.save(
        space.build_model(space.from_string(WINNER), input_shape=data.input_shape, num_classes=data.num_classes).state_dict(), run_dir / "w3.pt"
    )
    worse = {**winner, "arch_id": "w3", "val_accuracy": 0.4, "weights": str(run_dir / "w3.pt")}
    second = register_pipeline_run(run_dir=run_dir, config=load_config(run_dir), winner=worse, steps=steps)
    assert (second["alias"], second["model_uri"]) == ("challenger", f"models:/{name}@challenger") and second["version"] != out["version"]
    assert f"stays on v{out['version']}" in second["note"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == out["version"]


def _grayscale_in_either_shape(pyfunc: Any, data: Any, expected: np.ndarray) -> None:
    """The registered single-channel model takes N x H x W x 1 and N x H x W uint8 images; a
    wrong shape or dtype is a short error naming the shapes it takes, without the array."""
    from mlflow.exceptions import MlflowException

    from nas_lib.export_bundle import to_raw_images

    images = to_raw_images(data.val_x[:3], data.mean, data.std)
    _, h, w = data.input_shape
    assert images.shape == (3, h, w, 1)
    assert pyfunc.predict(images)["class_id"].tolist() == pyfunc.predict(images[..., 0])["class_id"].tolist() == expected.tolist()
    assert pyfunc.predict(images[..., 0].astype(np.int64))["class_id"].tolist() == expected.tolist()  # what JSON gives
    for bad, says in (
        (images[:, :-1], f"shape (N, {h}, {w}, 1) or (N, {h}, {w}); got shape (3, {h - 1}, {w}, 1)"),
        (images / 255.0, "dtype float64"),
    ):
        with pytest.raises(MlflowException, match=re.escape(says)) as err:
            pyfunc.predict(bad)
        assert len(str(err.value)) < 200


def test_promotion_compares_validation_accuracy_on_the_same_data(uri: str) -> None:
    client = mlflow.MlflowClient(uri)
    assert reg.promotion(client, "ehnas-none", "d1", 0.1) == (True, "first @champion")
    args = dict(
        tracking_uri=uri,
        experiment="ehnas",
        parent_run_id=None,
        model_name="ehnas-promo",
        model=nn.Linear(4, 2),
        input_example=np.zeros((1, 4), dtype=np.float32),
        arch_id="a",
        config_hash="c",
        metrics={},
        params={},
    )
    reg.register_champion(**args, tags={reg.DATA_TAG: "d1", reg.SCORE_TAG: "0.9"})
    assert reg.promotion(client, "ehnas-promo", "d1", 0.8) == (False, "@champion stays on v1: its validation accuracy 0.9000 > 0.8000")
    assert reg.promotion(client, "ehnas-promo", "d1", 0.9)[0] and reg.promotion(client, "ehnas-promo", "d1", 0.95)[0]
    assert reg.promotion(client, "ehnas-promo", "d2", 0.1) == (True, "@champion v1 was validated on other data")


def test_reused_weights_point_at_a_champion_run_of_the_registering_run(uri: str) -> None:
    client = mlflow.MlflowClient(uri)
    args = dict(
        tracking_uri=uri, experiment="ehnas-reuse", model_name="ehnas-reuse", model=tiny_model(), input_example=np.zeros((2, 1, 8, 8), np.float32)
    )
    args |= dict(arch_id="a1", config_hash="c1", metrics={"val_accuracy": 0.5}, params={"arch": "x"})
    first_parent = reg.start_parent_run(uri, "ehnas-reuse", "run-1", {}, {})
    first = reg.register_champion(parent_run_id=first_parent, **args)
    assert reg.register_champion(parent_run_id=first_parent, **args)["run_id"] == first["run_id"]  # a rerun: the version's own run
    second_parent = reg.start_parent_run(uri, "ehnas-reuse", "run-2", {}, {})
    second = reg.register_champion(parent_run_id=second_parent, **args)
    assert second["reused"] and second["version"] == first["version"] and second["run_id"] != first["run_id"]
    run = client.get_run(second["run_id"])
    assert run.data.tags["mlflow.parentRunId"] == second_parent and run.data.tags["ehnas.model_run"] == first["run_id"]
    assert run.data.tags["ehnas.reused_version"] == f"ehnas-reuse/{first['version']}" and run.data.metrics == {"val_accuracy": 0.5}
    again = reg.register_champion(parent_run_id=second_parent, **args)  # resumed: the same run, no point logged twice
    assert again["run_id"] == second["run_id"] and len(client.get_metric_history(second["run_id"], "val_accuracy")) == 1
