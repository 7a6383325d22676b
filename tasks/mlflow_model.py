"""The registered EHNAS model: self-contained for users, rebuildable for EHNAS.

`log_serving_model` logs the winner as an MLflow pyfunc model (the code in
`tasks.serving_model`) that takes raw uint8 images N x H x W x C (N x H x W too for one channel)
and returns class ids, names and probabilities; its signature declares the outputs and its
MLmodel ``metadata["input"]`` the input (`input_metadata`). Its artifacts:

- ``model.torchscript.pt``: the network with its normalisation inside (`RawImageModel`),
- ``labels.json``: class names, input layout and the normalisation (`ModelCard.labels`),
- ``weights.pt`` and ``ehnas.json`` (space, architecture, data options): what
  `rebuild_registered` needs to rebuild the `nn.Module` for export or further training,
- ``check.npz``: a few validation images with labels, so an export can be checked without the
  dataset.

With ``export_formats``, `export_bundle` files are logged under ``export/`` of the same run
(the run the model version points at).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from torch import nn

from nas_lib.export_bundle import ModelCard, export_bundle, to_raw_images

SERVING_CODE = Path(__file__).with_name("serving_model.py")
CHECK_IMAGES = 16


@dataclass(frozen=True)
class ServingInfo:
    """What the registered model carries besides its weights.

    Attributes:
        card: class names, input shape and normalisation.
        space: the search space as a dict (`tasks.spaces.space_to_dict`), to rebuild the network.
        data: the data options of the run (kind, path, image_size, ...), to reload its split.
        images, labels: validation images (uint8 N x H x W x C) and labels for checks.
        export_formats: `nas_lib.export_bundle.FORMATS` to export and log with the version.
        onnx_exporter: `export_onnx`'s exporter.
    """

    card: ModelCard
    space: Mapping[str, Any]
    data: Mapping[str, Any]
    images: np.ndarray
    labels: np.ndarray
    export_formats: Sequence[str] = ()
    onnx_exporter: str = "torchscript"
    extra: dict[str, Any] = field(default_factory=dict)


def log_serving_model(run_id: str, model: nn.Module, info: ServingInfo, pip_requirements: list[str]) -> str:
    """Logs the pyfunc model under ``name="model"`` in ``run_id`` (plus ``export/`` files); returns its URI."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from nas_lib.export import RawImageModel, export_torchscript

    c, h, w = info.card.input_shape
    # no input schema: MLflow would enforce one rank (N x H x W x C only) and print the whole array on a mismatch
    signature = ModelSignature(
        inputs=None, outputs=Schema([ColSpec("long", "class_id"), ColSpec("string", "class_name"), ColSpec("double", "probability")])
    )
    cpu = _cpu_copy(model)
    with tempfile.TemporaryDirectory(prefix="ehnas-model-") as tmp:
        folder = Path(tmp)
        check = np.ascontiguousarray(info.images[:CHECK_IMAGES])
        export_torchscript(
            RawImageModel(cpu, info.card.mean, info.card.std), torch.from_numpy(np.resize(check, (2, h, w, c))), folder / "model.torchscript.pt"
        )
        torch.save(cpu.state_dict(), folder / "weights.pt")
        (folder / "labels.json").write_text(json.dumps(info.card.labels(), indent=1), encoding="utf-8")
        (folder / "ehnas.json").write_text(
            json.dumps({"space": dict(info.space), "data": dict(info.data), "card": info.card.labels()}, indent=1), encoding="utf-8"
        )
        np.savez(folder / "check.npz", images=check, labels=info.labels[:CHECK_IMAGES])
        artifacts = {
            name: str(folder / file)
            for name, file in (
                ("torchscript", "model.torchscript.pt"),
                ("labels", "labels.json"),
                ("weights", "weights.pt"),
                ("ehnas", "ehnas.json"),
                ("check", "check.npz"),
            )
        }
        with mlflow.start_run(run_id=run_id):
            model_info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVING_CODE),
                artifacts=artifacts,
                signature=signature,
                input_example=check[:2],
                metadata={"input": input_metadata(info.card)},
                pip_requirements=[*pip_requirements, "pandas"],
            )
            if info.export_formats:
                report = export_bundle(
                    cpu,
                    info.card,
                    folder / "export",
                    formats=info.export_formats,
                    images=info.images,
                    labels=info.labels,
                    onnx_exporter=info.onnx_exporter,
                )
                mlflow.log_artifacts(str(folder / "export"), artifact_path="export")
                mlflow.log_metrics({f"export_{n}_accuracy": e["accuracy"] for n, e in report["formats"].items() if "accuracy" in e})
    return model_info.model_uri


def input_metadata(card: ModelCard) -> dict[str, Any]:
    """What the registered model takes (MLmodel ``metadata["input"]``): uint8 images N x H x W x C,
    and N x H x W for a single-channel model."""
    c, h, w = card.input_shape
    shapes = [[-1, h, w, c], *([[-1, h, w]] if c == 1 else [])]
    return {**card.labels()["input"], "dtype": "uint8", "shape": [-1, h, w, c], "accepted_shapes": shapes}


def _cpu_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).to("cpu").eval()


def registered_files(model_uri: str) -> Path:
    """Downloads a registered model's folder; returns its ``artifacts`` folder.

    Raises:
        ValueError: the model was registered without ``ehnas.json`` (an older version).
    """
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    if not (local / "artifacts" / "ehnas.json").is_file():
        raise ValueError(
            f"{model_uri} carries no ehnas.json (registered before EHNAS logged its architecture); "
            "export it from its run folder instead: ehnas export runs/<run name>"
        )
    return local / "artifacts"


def rebuild_registered(model_uri: str) -> tuple[nn.Module, ModelCard, dict[str, Any], Path]:
    """The registered network as an `nn.Module` (normalised float input), its card, its
    ``ehnas.json`` content and the local artifacts folder."""
    from tasks.spaces import space_from_dict

    files = registered_files(model_uri)
    meta = json.loads((files / "ehnas.json").read_text(encoding="utf-8"))
    c = meta["card"]
    card = ModelCard(tuple(c["class_names"]), tuple(c["input_shape"]), tuple(c["mean"]), tuple(c["std"]), c["arch"], c["arch_id"])
    space = space_from_dict(meta["space"])
    model = space.build_model(space.from_string(card.arch), input_shape=card.input_shape, num_classes=len(card.class_names))
    model.load_state_dict(torch.load(files / "weights.pt", map_location="cpu", weights_only=True))
    return model.eval(), card, meta, files


def registered_export_source(model_uri: str, tracking_uri: str) -> tuple[nn.Module, ModelCard, np.ndarray, np.ndarray | None]:
    """What `ehnas export` needs from a registered version at ``tracking_uri``: the rebuilt
    network, its card and check images: the run's validation split when its data can be loaded
    here (through `DataRef`, as the run loaded it), else the images stored with the model.

    Raises:
        LookupError: no such model at ``tracking_uri``.
    """
    from mlflow.exceptions import MlflowException

    from tasks.data_ref import DataRef
    from tasks.mlflow_registry import client_for

    client_for(tracking_uri)
    try:
        model, card, meta, files = rebuild_registered(model_uri)
    except MlflowException as err:
        raise LookupError(f"{model_uri} not found at {tracking_uri}: {err.message}") from err
    try:
        data = DataRef.from_options(meta.get("data", {})).load()
        return model, card, to_raw_images(data.val_x, data.mean, data.std), data.val_y.numpy()
    except (KeyError, OSError, ValueError, ImportError):  # the data lives on another machine: use the stored images
        with np.load(files / "check.npz") as stored:
            return model, card, stored["images"], stored["labels"]


def serving_info(config: Any, winner: Mapping[str, Any], space: Mapping[str, Any]) -> ServingInfo:
    """The `ServingInfo` of a pipeline run's winner (its data, `space` as a dict and ``export`` settings)."""
    from tasks.data_ref import DataRef

    data = DataRef.of(config).load()
    card = ModelCard(tuple(data.class_names), tuple(data.input_shape), tuple(data.mean), tuple(data.std), str(winner["arch"]), str(winner["arch_id"]))
    options = {**config.data.model_dump(mode="json"), "seed": config.seed}
    return ServingInfo(
        card=card,
        space=dict(space),
        data=options,
        images=to_raw_images(data.val_x, data.mean, data.std),
        labels=data.val_y.numpy(),
        export_formats=tuple(config.export.formats),
        onnx_exporter=config.export.onnx_exporter,
    )
