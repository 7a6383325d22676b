"""Short training: learning happens, early stopping restores the best epoch, failures are rows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support
from torch import nn

from nas_lib.data.datasets import ImageDataset, load_dataset
from nas_lib.train import BatchProgress, TrainConfig, classification_report, resolve_device, train_and_evaluate
from nas_lib.train.progress import BatchReporter, format_seconds


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_dataset("digits", max_items=400, seed=0)


class Constant(nn.Module):
    """Predicts class 0 whatever it sees, so validation accuracy never moves."""

    def __init__(self, fill: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.fill = fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10) + self.w * 0
        logits[:, 0] = 1.0 + self.fill
        return logits


def test_training_learns_and_reports_every_metric(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    seen: list[dict] = []
    result = train_and_evaluate(tiny_cnn(), digits, TrainConfig(epochs=4, batch_size=32, lr=1e-2, patience=4), progress=seen.append)
    assert result.state == "ok" and result.error is None and result.epochs_run == 4
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4] and len(seen) == 4 and seen[-1]["epochs"] == 4
    m = result.metrics
    assert m["val_accuracy"] > 0.5  # chance is 0.1
    assert m["val_accuracy"] == max(h["val_accuracy"] for h in result.history)
    assert set(m) >= {"val_accuracy", "val_loss", "macro_precision", "macro_recall", "macro_f1", "per_class", "confusion_matrix"}
    assert all(len(m["per_class"][k]) == 10 for k in ("precision", "recall", "f1"))
    assert np.array(m["confusion_matrix"]).sum() == len(digits.val_y)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_best_weights_are_restored(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    model = tiny_cnn()
    result = train_and_evaluate(model, digits, TrainConfig(epochs=3, batch_size=64, lr=5e-2, patience=3))
    assert result.best_state_dict is not None
    for key, value in model.state_dict().items():
        assert torch.equal(value, result.best_state_dict[key])
    model.eval()
    with torch.no_grad():
        accuracy = (model(digits.val_x).argmax(1) == digits.val_y).double().mean().item()
    assert accuracy == pytest.approx(result.metrics["val_accuracy"])


def test_early_stopping_after_patience(digits: ImageDataset) -> None:
    result = train_and_evaluate(Constant(), digits, TrainConfig(epochs=10, patience=2))
    assert result.state == "ok" and result.epochs_run == 3  # best at epoch 1, then 2 stale epochs
    assert result.metrics["macro_recall"] == pytest.approx(0.1)


def test_same_seed_same_history(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    cfg = TrainConfig(epochs=2, batch_size=64, max_batches_per_epoch=3, seed=5)
    a, b = (train_and_evaluate(tiny_cnn(), digits, cfg) for _ in range(2))
    assert a.history == b.history
    before = torch.random.get_rng_state()
    train_and_evaluate(tiny_cnn(), digits, cfg)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's generator is untouched


def test_nan_loss_fails_without_raising(digits: ImageDataset) -> None:
    result = train_and_evaluate(Constant(fill=float("nan")), digits, TrainConfig(epochs=2))
    assert result.state == "failed" and "non-finite" in result.error and result.metrics == {}


class Exploding(nn.Module):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.error


def test_out_of_memory_fails_without_raising(digits: ImageDataset) -> None:
    result = train_and_evaluate(Exploding(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")), digits, TrainConfig(epochs=1))
    assert result.state == "failed" and "out of memory" in result.error and result.epochs_run == 0
    with pytest.raises(RuntimeError, match="shape mismatch"):  # a bug is not swallowed
        train_and_evaluate(Exploding(RuntimeError("shape mismatch")), digits, TrainConfig(epochs=1))


def test_hybrid_network_trains() -> None:
    from nas_lib.space import get_space

    digits = load_dataset("digits", max_items=60)
    space = get_space("hybrid")
    spec = space.from_string(
        "residual:cnn(planes=16,stride=1,cardinality=1,base_width=32) > sequential:cnn(planes=16,stride=1,cardinality=1,base_width=32) > residual:vit(num_heads=4,mlp_ratio=4,qkv_dim=192,window_size=7) > sequential:mamba(d_state=8,expand=1,d_conv=2)"
    )
    torch.manual_seed(0)
    model = space.build_model(spec, digits.input_shape, digits.num_classes)
    result = train_and_evaluate(model, digits, TrainConfig(epochs=1, batch_size=16, max_batches_per_epoch=2))
    assert result.state == "ok" and 0.0 <= result.metrics["val_accuracy"] <= 1.0 and result.epochs_run == 1


def test_report_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 3, 200)  # class 3 is never predicted
    report = classification_report(torch.from_numpy(y), torch.from_numpy(p), 4)
    precision, recall, f1, _ = precision_recall_fscore_support(y, p, labels=range(4), zero_division=0)
    assert np.allclose(report["per_class"]["precision"], precision) and np.allclose(report["per_class"]["recall"], recall)
    assert np.allclose(report["per_class"]["f1"], f1) and report["macro_f1"] == pytest.approx(f1.mean())
    assert report["confusion_matrix"] == sk_confusion(y, p, labels=range(4)).tolist()
    assert report["val_accuracy"] == pytest.approx((y == p).mean())


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda:0" and resolve_device("CUDA") == "cuda:0" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="only 2 CUDA"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(patience=0), dict(lr=0.0), dict(label_smoothing=1.0), dict(max_batches_per_epoch=0)])
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_module_entry_point_prints_scores(capsys: pytest.CaptureFixture[str]) -> None:
    from nas_lib.train.__main__ import main

    summary = main(["--max-items", "60", "--epochs", "1", "--batch-size", "16"])
    assert summary["state"] == "ok" and summary["epochs_run"] == 1 and '"val_accuracy"' in capsys.readouterr().out


def test_progress_within_an_epoch_reports_batches_images_and_time_left(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    cfg = TrainConfig(epochs=2, batch_size=32, patience=2)
    steps = math.ceil(len(digits.train_y) / 32)
    every_batch: list[BatchProgress] = []
    result = train_and_evaluate(tiny_cnn(), digits, cfg, on_batches=every_batch.append, report_every_s=0)
    assert [(p.epoch, p.batch, p.batches) for p in every_batch] == [(e, b, steps) for e in (1, 2) for b in range(1, steps + 1)]
    assert [p.final for p in every_batch] == ([False] * (steps - 1) + [True]) * 2
    assert [p.images for p in every_batch[:steps]] == [min(32 * b, len(digits.train_y)) for b in range(1, steps + 1)]
    assert every_batch[-1].eta_s == 0 and every_batch[-1].images_per_s > 0 and every_batch[0].eta_s > 0
    epoch_ends: list[BatchProgress] = []  # an interval no epoch reaches: only each epoch's end is reported
    same = train_and_evaluate(tiny_cnn(), digits, cfg, on_batches=epoch_ends.append, report_every_s=1e9)
    assert [(p.epoch, p.batch, p.final) for p in epoch_ends] == [(1, steps, True), (2, steps, True)]
    assert same.history == result.history  # reporting does not change the training


def test_batch_progress_line() -> None:
    p = BatchProgress(epoch=1, epochs=5, batch=300, batches=750, images=19_200, seconds=60.0)
    assert p.line() == "epoch 1/5, batch 300/750, 320 images/s, ETA 1m30s"
    assert format_seconds(7) == "7s" and format_seconds(3725) == "1h02m"
    with pytest.raises(ValueError, match="every_s"):
        BatchReporter(print, -1, 1, 1)
