"""On CPU with default settings the loop computes exactly what it computed before the CUDA fast path.

Two guards: values recorded from the loop as it was at commit c9b3e7c (`assets/train_golden.json`,
one torch thread), and a straight re-statement of that loop here, which must give bit-identical
histories in the same process whatever the machine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from nas_lib.data.datasets import ImageDataset, load_dataset
from nas_lib.space import get_space
from nas_lib.train import TrainConfig, train_and_evaluate
from tests.conftest import make_tiny_cnn

GOLDEN = json.loads((Path(__file__).parent / "assets" / "train_golden.json").read_text(encoding="utf-8"))
HYBRID = (
    "sequential:cnn(planes=16,stride=2,cardinality=1,base_width=32) > residual:cnn(planes=16,stride=1,cardinality=1,base_width=32)"
    " > residual:vit(num_heads=4,mlp_ratio=4,qkv_dim=192,window_size=7) > sequential:mamba(d_state=8,expand=1,d_conv=2)"
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The golden values were recorded with one thread; reductions differ with more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_hybrid(data: ImageDataset) -> nn.Module:
    space = get_space("hybrid")
    torch.manual_seed(0)
    return space.build_model(space.from_string(HYBRID), data.input_shape, data.num_classes)


CASES = {
    "cnn": (
        lambda: load_dataset("digits", max_items=400, seed=0),
        lambda data: make_tiny_cnn(),
        TrainConfig(epochs=3, batch_size=32, lr=1e-2, patience=3, seed=3),
    ),
    "hybrid": (
        lambda: load_dataset("digits", max_items=120, seed=0),
        small_hybrid,
        TrainConfig(epochs=2, batch_size=16, max_batches_per_epoch=3, patience=2, seed=1),
    ),
}


def reference_history(model: nn.Module, data: ImageDataset, cfg: TrainConfig) -> list[dict[str, float]]:
    """The epoch loop of commit c9b3e7c on CPU, restated: per-step sync, fp32, python-float sums."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        steps = max(1, math.ceil(len(data.train_y) / cfg.batch_size))
        steps = min(steps, cfg.max_batches_per_epoch) if cfg.max_batches_per_epoch else steps
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        shuffler = torch.Generator().manual_seed(cfg.seed)
        history, best, stale = [], -1.0, 0
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(len(data.train_y), generator=shuffler)
            model.train()
            total, seen = 0.0, 0
            for step in range(steps):
                idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                if len(idx) < 2 and seen:
                    break
                loss = loss_fn(model(data.train_x[idx]), data.train_y[idx])
                assert torch.isfinite(loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
                seen += len(idx)
            model.eval()
            val_total, predictions = 0.0, []
            with torch.no_grad():
                for start in range(0, len(data.val_y), cfg.batch_size):
                    logits = model(data.val_x[start : start + cfg.batch_size])
                    val_total += loss_fn(logits, data.val_y[start : start + cfg.batch_size]).item() * len(logits)
                    predictions.append(logits.argmax(dim=1))
            accuracy = (torch.cat(predictions) == data.val_y).double().mean().item()
            history.append({"epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": val_total / len(data.val_y), "val_accuracy": accuracy})
            best, stale = (accuracy, 0) if accuracy > best else (best, stale + 1)
            if stale >= cfg.patience:
                break
    return history


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_cpu_loop_is_bit_identical_to_the_plain_reference(case: str) -> None:
    make_data, make_model, cfg = CASES[case]
    data = make_data()
    result = train_and_evaluate(make_model(data), data, cfg)
    assert result.state == "ok"
    assert result.history == reference_history(make_model(data), data, cfg)


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_cpu_loop_reproduces_the_recorded_values(case: str) -> None:
    make_data, make_model, cfg = CASES[case]
    data = make_data()
    result = train_and_evaluate(make_model(data), data, cfg)
    golden = GOLDEN[case]
    assert [h["val_accuracy"] for h in result.history] == [h["val_accuracy"] for h in golden["history"]]
    assert result.metrics["val_accuracy"] == golden["val_accuracy"]
    # Another CPU (vector width, BLAS build) may round differently; on the recording machine they are equal.
    for got, want in zip(result.history, golden["history"], strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4)
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-4)
