"""Export: TorchScript and ONNX files reproduce the model; failures raise ExportError, leave nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas_lib.export import EXPORTERS, ExportError, export_onnx, export_torchscript

# stride 2 first: 4x4 tokens keep the traced attention and scan small, so exports stay fast
HYBRID = "sequential:cnn(planes=16,stride=2,cardinality=1,base_width=32) > residual:cnn(planes=16,stride=1,cardinality=1,base_width=32) > parallel:vit(num_heads=4,mlp_ratio=4,qkv_dim=192,window_size=7) > sequential:mamba(d_state=8,expand=1,d_conv=2)"


@pytest.fixture(scope="module")
def hybrid() -> nn.Module:
    from nas_lib.space import get_space

    space = get_space("hybrid")
    torch.manual_seed(0)
    return space.build_model(space.from_string(HYBRID), input_shape=(1, 8, 8), num_classes=10)


def _reference(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch >= 2.10 flags torch.jit.load
def test_torchscript_round_trip(hybrid: nn.Module, tmp_path: Path) -> None:
    hybrid.train()
    path = export_torchscript(hybrid, torch.randn(2, 1, 8, 8), tmp_path / "sub" / "model.pt")
    assert path.exists() and hybrid.training  # the caller's model keeps its mode
    x = torch.randn(5, 1, 8, 8)
    loaded = torch.jit.load(str(path))
    assert np.allclose(loaded(x).detach().numpy(), _reference(hybrid, x), atol=1e-5)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary leftovers


def _onnx_outputs(path: Path, x: torch.Tensor) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    (out,) = ReferenceEvaluator(str(path)).run(None, {"input": x.numpy()})
    return out


def test_onnx_round_trip_with_dynamic_batch(hybrid: nn.Module, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    # the legacy exporter here: the torch.export one takes ~10x longer on this net (next test)
    path = export_onnx(hybrid, torch.randn(2, 1, 8, 8), tmp_path / "model.onnx", exporter="torchscript")
    x = torch.randn(3, 1, 8, 8)
    out = _onnx_outputs(path, x)
    assert out.shape == (3, 10) and np.allclose(out, _reference(hybrid, x), atol=1e-4)


def test_onnx_dynamo_exporter(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    path = export_onnx(model, torch.randn(2, 1, 8, 8), tmp_path / "small.onnx", exporter="dynamo")
    x = torch.randn(4, 1, 8, 8)
    assert np.allclose(_onnx_outputs(path, x), _reference(model, x), atol=1e-5)
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(model, x, tmp_path / "x.onnx", exporter="tf")


class NotATensor(nn.Module):
    def forward(self, x: torch.Tensor) -> str:
        return "logits"


@pytest.mark.parametrize("name", sorted(EXPORTERS))
def test_unexportable_model_raises_export_error(name: str, tmp_path: Path) -> None:
    target = tmp_path / f"model.{name}"
    with pytest.raises(ExportError, match="failed"):
        EXPORTERS[name](NotATensor(), torch.randn(1, 1, 8, 8), target)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_packages_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in ("onnx", "onnxscript"):
        monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(ExportError, match="onnx"):
        export_onnx(model, torch.randn(2, 1, 8, 8), tmp_path / "m.onnx")
