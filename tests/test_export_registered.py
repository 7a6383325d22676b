"""The registered winner is self-contained, and `ehnas export` turns it (or a run folder) into
files that match PyTorch at batch 1 and 16; the example scripts classify an image file with each."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ehnas.cli import app
from tests.test_datasets_training import CNN

ROOT = Path(__file__).resolve().parents[1]
NAME = "ehnas-idx"

# Runs in a fresh interpreter that cannot import any EHNAS package: it reads MNIST test images
# straight from the IDX files and classifies them through MLflow alone.
FRESH = textwrap.dedent("""
    import gzip, json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("ehnas", "nas_lib", "tasks", "flows"):
                raise ImportError(f"{name} must not be imported by a served model")
    sys.meta_path.insert(0, Block())
    import mlflow, numpy as np
    data = gzip.open(sys.argv[2], "rb").read()
    images = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)[:40]  # as IDX files give them: no channel axis
    model = mlflow.pyfunc.load_model(sys.argv[1])
    out = model.predict(images)
    spec = model.metadata.metadata["input"]
    same = model.predict(np.ascontiguousarray(images[:, :, :, None]))["class_id"].tolist() == out["class_id"].tolist()
    print(json.dumps({"ids": out["class_id"].tolist(), "names": out["class_name"].tolist(), "p": out["probability"].tolist(),
                      "shape": spec["shape"], "dtype": spec["dtype"], "accepted": spec["accepted_shapes"], "same": same}))
""")


@pytest.fixture(scope="module")
def registered(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict:
    """A run folder on real MNIST (IDX) with one trained CNN finalist, registered in MLflow."""
    if not (ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST not found in ../shared/data/mnist")
    from flows.stages import save_finalist
    from nas_lib.steps import Step
    from tasks.config import PipelineConfig
    from tasks.data_ref import DataRef
    from tasks.registry import registry_row
    from tasks.run_folder import RunFolder
    from tasks.training import TRAINING_SCHEMA, train_result, training_frame, winner

    root = tmp_path_factory.mktemp("reg")
    uri = f"sqlite:///{root}/mlflow.db"
    config = PipelineConfig(
        runs_root=str(root),
        data={"kind": "idx", "path": str(ROOT.parent / "shared" / "data" / "mnist"), "max_items": 300},
        training={"epochs": 1, "batch_size": 32},
        registry={"tracking_uri": uri},
    )
    run = RunFolder.create(config)
    result = train_result(
        {"arch_id": "m1", "arch": CNN, "rank": 1, "fitness": 1.0}, run.space_dict(), DataRef.of(config), config.training, config.seed
    )
    run.write_step(Step.TRAINING, training_frame([save_finalist(run, result)]), TRAINING_SCHEMA)
    out = registry_row(
        config, winner(run.read_step(Step.TRAINING)), run_dir=run.root, steps=[str(run.step_file(s)) for s in Step], space=run.space_dict()
    )
    assert out["state"] == "ok", out
    return {"run_dir": run.root, "uri": uri, "model_uri": out["model_uri"], "config": run.config()}


@pytest.mark.slow
def test_a_process_without_ehnas_classifies_raw_mnist_images(registered: dict) -> None:
    from nas_lib.data.idx import read_idx
    from tasks.data_ref import DataRef
    from tasks.mlflow_registry import load_champion

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MLFLOW_TRACKING_URI": registered["uri"]}
    mnist = ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
    done = subprocess.run(
        [sys.executable, "-c", FRESH, registered["model_uri"], str(mnist)],
        cwd=registered["run_dir"].parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["shape"] == [-1, 28, 28, 1] and served["dtype"] == "uint8" and served["accepted"] == [[-1, 28, 28, 1], [-1, 28, 28]]
    assert served["same"]
    # the same images through the rebuilt network and the run's own normalisation
    data = DataRef.of(registered["config"]).load()
    raw = torch.from_numpy(read_idx(mnist)[:40].copy())[:, None]
    model = load_champion(registered["uri"], NAME)
    with torch.no_grad():
        probs = torch.softmax(model(data.normalize(raw)), dim=1)
    assert served["ids"] == probs.argmax(1).tolist()
    assert served["names"] == [data.class_names[i] for i in served["ids"]]
    assert np.allclose(served["p"], probs.max(1).values.numpy(), atol=1e-5)


@pytest.mark.slow
def test_export_all_from_the_registry_matches_pytorch(registered: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", registered["model_uri"], "--format", "all", "--out", str(tmp_path), "--tracking-uri", registered["uri"]]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "export.json").read_text())
    assert set(report["formats"]) == {"onnx", "torchscript", "quantized"} and report["images_scored"] == 60
    for name in ("onnx", "torchscript"):
        entry = report["formats"][name]
        assert entry["max_abs_diff_batch1"] < 1e-4 and entry["max_abs_diff_batch16"] < 1e-4, entry
        assert entry["accuracy"] == pytest.approx(report["fp32_accuracy"], abs=1 / 60)
    assert 0.0 <= report["formats"]["quantized"]["accuracy"] <= 1.0
    assert "quantized" in result.output and json.loads((tmp_path / "labels.json").read_text())["input"]["layout"] == "NHWC"


@pytest.mark.parametrize(
    "fmt,script,file",
    [
        ("onnx", "classify_onnx.py", "model.onnx"),
        ("torchscript", "classify_torchscript.py", "model.torchscript.pt"),
        ("quantized", "classify_quantized.py", "model.int8.torchscript.pt"),
    ],
)
@pytest.mark.slow
def test_example_script_classifies_an_image_file(registered: dict, tmp_path: Path, fmt: str, script: str, file: str) -> None:
    from PIL import Image

    from nas_lib.data.idx import read_idx

    result = CliRunner().invoke(app, ["export", str(registered["run_dir"]), "--format", fmt, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    digit = read_idx(ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")[0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), str(tmp_path / file), str(tmp_path / "digit.png")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name, probability = done.stdout.split()
    assert name in [str(d) for d in range(10)] and 0.0 < float(probability) <= 1.0


def test_export_refuses_a_graph_fixed_at_one_batch_size(tmp_path: Path) -> None:
    from nas_lib.export import ExportError, export_onnx, export_torchscript

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    graph = torch.export.export(model, (torch.randn(2, 1, 4, 4),)).module()
    for exporter in (export_torchscript, export_onnx):
        with pytest.raises(ExportError, match="fixed at batch 2"):
            exporter(graph, torch.randn(2, 1, 4, 4), tmp_path / "m.bin")


def test_export_errors_are_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_format = runner.invoke(app, ["export", str(tmp_path), "--format", "tflite"])
    assert bad_format.exit_code == 2 and "tflite" in bad_format.output
    not_a_run = runner.invoke(app, ["export", str(tmp_path)])
    assert not_a_run.exit_code == 2 and "neither a run folder" in re.sub(r"[\s│]+", " ", not_a_run.output)  # the box wraps long paths
