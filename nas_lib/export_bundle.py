"""Every export format of one trained network in one folder, checked against PyTorch.

`export_bundle` wraps the network in `RawImageModel` (so each file takes raw uint8 N x H x W x C
images), writes the asked formats, runs each file at batch 1 and 16 on real images and records
the largest absolute difference from PyTorch's logits, and scores every format on the
validation split (the int8 file's accuracy beside fp32). ``labels.json`` carries what a user
needs to feed the files (class names, input layout, the normalisation already inside them);
``export.json`` holds the measurements.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nas_lib.artifacts import atomic_write_json
from nas_lib.export import RawImageModel, export_onnx, export_quantized, export_torchscript, run_exported

FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "quantized": "model.int8.torchscript.pt"}
FORMATS = tuple(FILES)
CHECK_BATCHES = (1, 16)


@dataclass(frozen=True)
class ModelCard:
    """What travels with an exported network.

    Attributes:
        class_names: one name per output index.
        input_shape: (C, H, W) the network was trained on.
        mean, std: per-channel statistics on [0, 1] pixels (already applied inside the files).
        arch, arch_id: the architecture string and its id (for the record).
    """

    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    arch: str = ""
    arch_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def labels(self) -> dict[str, Any]:
        """The ``labels.json`` content."""
        c, h, w = self.input_shape
        return {
            **asdict(self),
            "input": {"layout": "NHWC", "dtype": "uint8", "height": h, "width": w, "channels": c, "color": "L" if c == 1 else "RGB"},
            "output": "logits, one per class name",
        }


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"``, ``"onnx,quantized"`` or a list -> known format names; unknown ones raise ValueError."""
    names = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    if "all" in names:
        return FORMATS
    unknown = sorted(set(names) - set(FORMATS))
    if unknown or not names:
        raise ValueError(f"unknown export format(s) {unknown or names}; choose from {', '.join(FORMATS)} or all")
    return tuple(dict.fromkeys(names))


def to_raw_images(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised float N x C x H x W back to uint8 N x H x W x C (what a camera or PIL gives)."""
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    pixels = ((x.float() * s + m) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(0, 2, 3, 1).numpy())


def export_bundle(
    model: nn.Module,
    card: ModelCard,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    onnx_exporter: str = "torchscript",
) -> dict[str, Any]:
    """Writes each format to ``out_dir`` and checks it.

    Args:
        model: the trained network (normalised float input), any device or mode.
        card: class names, input shape and normalisation.
        out_dir: folder for the files, ``labels.json`` and ``export.json``.
        formats: names in `FORMATS`.
        images: real uint8 N x H x W x C images; the first 16 (repeated when fewer) check the
            outputs, all of them are scored when ``labels`` is given.
        labels: their labels (e.g. the validation split), for accuracy per format.
        onnx_exporter: passed to `export_onnx` (the legacy TorchScript-based one is the fastest).

    Returns:
        The ``export.json`` content: per format its file, size, seconds, the max abs difference
        from PyTorch at batch 1 and 16 and the accuracy; ``fp32_accuracy`` of PyTorch itself.
    """
    out = Path(out_dir)
    wrapped = RawImageModel(model.to("cpu"), card.mean, card.std).eval()
    check = np.ascontiguousarray(np.resize(images, (max(CHECK_BATCHES), *images.shape[1:])))
    with torch.no_grad():
        reference = wrapped(torch.from_numpy(check)).numpy()
    report: dict[str, Any] = {"arch_id": card.arch_id, "formats": {}, "images_checked": int(len(check))}
    if labels is not None:
        report["images_scored"] = int(len(images))
        report["fp32_accuracy"] = _accuracy(lambda batch: _torch_logits(wrapped, batch), images, labels)
    example = torch.from_numpy(check[:2])
    for name in formats:
        start = time.perf_counter()
        path = _write(name, wrapped, example, out / FILES[name], onnx_exporter)
        entry: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 2)}
        for batch in CHECK_BATCHES:
            got = run_exported(path, check[:batch])
            entry[f"max_abs_diff_batch{batch}"] = float(np.abs(got - reference[:batch]).max())
        if labels is not None:
            entry["accuracy"] = _accuracy(lambda batch, p=path: run_exported(p, batch), images, labels)
        report["formats"][name] = entry
    atomic_write_json(out / "labels.json", card.labels())
    atomic_write_json(out / "export.json", report)
    return report


def _write(name: str, model: nn.Module, example: Tensor, path: Path, onnx_exporter: str) -> Path:
    if name == "onnx":
        return export_onnx(model, example, path, exporter=onnx_exporter)
    if name == "torchscript":
        return export_torchscript(model, example, path)
    if name == "quantized":
        return export_quantized(model, example, path)
    raise ValueError(f"unknown export format {name!r}; choose from {', '.join(FORMATS)}")


def _torch_logits(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()


def _accuracy(logits_of, images: np.ndarray, labels: np.ndarray, chunk: int = 256) -> float:  # noqa: ANN001
    hits = 0
    for start in range(0, len(images), chunk):
        hits += int((logits_of(images[start : start + chunk]).argmax(axis=1) == labels[start : start + chunk]).sum())
    return hits / max(len(images), 1)
