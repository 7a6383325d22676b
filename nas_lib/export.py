"""Exports a trained network for serving: TorchScript (traced), ONNX and int8 TorchScript.

`RawImageModel` puts the training normalisation inside the network, so every exported file
takes raw uint8 images (N x H x W x C, what image libraries give). The batch dimension stays
free: exports trace a rebuilt `nn.Module`; a graph already fixed by ``torch.export`` (what MLflow
loads from a ``pt2`` model) is refused with a hint, because tracing it would bake its batch
size into the file. `run_exported` runs any exported file, for checks against PyTorch.

Every exporter works on a CPU copy of the model in eval mode, so the caller's model keeps its
device and mode, and the files run anywhere. Files are written to a temporary folder next to
the target and renamed into place, so a killed export never leaves a half-written model.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn


class ExportError(RuntimeError):
    """An exporter could not convert the model; the message carries the exporter's reason."""


class RawImageModel(nn.Module):
    """``model`` behind its input normalisation: uint8 N x H x W x C in, logits out.

    Args:
        model: the trained network (float N x C x H x W, normalised).
        mean, std: the per-channel training statistics on [0, 1] pixels.
    """

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)))

    def forward(self, images: Tensor) -> Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        return self.model((x - 255.0 * self.mean) * self.scale)  # type: ignore[operator]  # registered buffers


def fixed_batch_graph(model: nn.Module) -> int | None:
    """The batch size a ``torch.export`` graph was specialised to, or None for an ordinary module."""
    if not isinstance(model, torch.fx.GraphModule):
        return None
    for node in model.graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" else None
        if isinstance(value, Tensor) and value.dim() > 0 and isinstance(value.shape[0], int):
            return int(value.shape[0])
    return None


def _refuse_fixed_graph(model: nn.Module) -> None:
    batch = fixed_batch_graph(model) if not isinstance(model, RawImageModel) else fixed_batch_graph(model.model)
    if batch is not None:
        raise ExportError(
            f"the model is a torch.export graph fixed at batch {batch}; an export of it would accept only that "
            "batch size. Rebuild the network from its architecture and weights (`ehnas export` does) and export that."
        )


def export_quantized(model: nn.Module, example: Tensor, path: str | Path) -> Path:
    """Dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations quantized on
    the fly), traced and saved as TorchScript; convolutions stay float.

    Raises:
        ExportError: quantization, tracing or saving failed.
    """
    from torch.ao.quantization import quantize_dynamic

    cpu_model, _ = _cpu_eval_copy(model, example)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization is flagged for migration
            quantized = quantize_dynamic(cpu_model, {nn.Linear}, dtype=torch.qint8)
    except Exception as err:
        raise ExportError(f"int8 quantization failed: {type(err).__name__}: {err}") from err
    return export_torchscript(quantized, example, path)


def run_exported(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Outputs of an exported file (``.onnx`` through onnxruntime, else TorchScript) on ``images``."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(torch.from_numpy(images)).numpy()


def export_torchscript(model: nn.Module, example: Tensor, path: str | Path) -> Path:
    """Traces ``model`` on ``example`` and saves it as a TorchScript archive.

    Tracing (not scripting) is used because the hybrid blocks use Python control flow that
    depends only on the architecture, which tracing freezes.

    Args:
        model: the network (any device, any mode).
        example: one input batch, e.g. ``data.val_x[:2]``.
        path: the ``.pt`` file to write.

    Returns:
        The written path; load it with ``torch.jit.load(path)``.

    Raises:
        ExportError: tracing or saving failed.
    """
    _refuse_fixed_graph(model)
    cpu_model, cpu_example = _cpu_eval_copy(model, example)
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 flags jit as legacy
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(cpu_model, cpu_example)
            with _staged(path) as staged:
                torch.jit.save(traced, str(staged))
    except Exception as err:  # the tracer raises many types; callers need one
        raise ExportError(f"TorchScript export failed: {type(err).__name__}: {err}") from err
    return path


def export_onnx(model: nn.Module, example: Tensor, path: str | Path, *, opset: int | None = None, exporter: str = "auto") -> Path:
    """Exports ``model`` to ONNX with a dynamic batch dimension and checks the result.

    The torch.export-based exporter (needs ``onnx`` and ``onnxscript``) is tried first; when it
    fails, the legacy TorchScript-based exporter is tried. Input is named ``input``, output
    ``logits``.

    Args:
        model: the network (any device, any mode).
        example: one input batch.
        path: the ``.onnx`` file to write (large models may add a ``.data`` file beside it).
        opset: ONNX opset version; None lets the exporter choose.
        exporter: ``"auto"`` (torch.export-based, then legacy), ``"dynamo"`` or ``"torchscript"``
            (the legacy exporter: much faster to run, deprecated by PyTorch).

    Returns:
        The written path.

    Raises:
        ExportError: both exporters failed or the ONNX checker rejected the model; the message
            holds each exporter's reason (e.g. a missing ``onnxscript`` package).
    """
    _refuse_fixed_graph(model)
    cpu_model, cpu_example = _cpu_eval_copy(model, example)
    path = Path(path)
    attempts = {"dynamo": _onnx_dynamo, "torchscript": _onnx_legacy}
    if exporter != "auto" and exporter not in attempts:
        raise ValueError(f"exporter must be 'auto', 'dynamo' or 'torchscript', got {exporter!r}")
    reasons = []
    for name, attempt in attempts.items():
        if exporter not in ("auto", name):
            continue
        try:
            with _staged(path) as staged, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                attempt(cpu_model, cpu_example, staged, opset)
                _check_onnx(staged)
            return path
        except Exception as err:  # exporters raise many unrelated types; collect the reasons
            reasons.append(f"{name} exporter: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
    raise ExportError("ONNX export failed; " + "; ".join(reasons))


def _onnx_dynamo(model: nn.Module, example: Tensor, target: Path, opset: int | None) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    torch.onnx.export(
        model,
        (example,),
        str(target),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        opset_version=opset,
        external_data=False,
        verbose=False,
    )


def _onnx_legacy(model: nn.Module, example: Tensor, target: Path, opset: int | None) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(target),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset or 17,
    )


def _check_onnx(target: Path) -> None:
    import onnx

    onnx.checker.check_model(str(target))


def _cpu_eval_copy(model: nn.Module, example: Tensor) -> tuple[nn.Module, Tensor]:
    """A deep CPU copy in eval mode, so exporting never moves or retrains the caller's model."""
    if not isinstance(example, Tensor):
        raise ExportError(f"example must be a tensor batch, got {type(example).__name__}")
    return copy.deepcopy(model).to("cpu").eval(), example.detach().to("cpu")


@contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """Yields a path inside a temporary folder beside ``path``; on success moves every file the
    exporter wrote there (the model and any side files) next to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield folder / path.name
        for file in folder.iterdir():
            os.replace(file, path.parent / file.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


EXPORTERS: dict[str, Callable[[nn.Module, Tensor, str | Path], Path]] = {
    "torchscript": export_torchscript,
    "onnx": export_onnx,
    "quantized": export_quantized,
}
