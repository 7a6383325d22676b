"""On CPU with default settings the loop computes exactly what it computed before the CUDA fast path.

What holds on any CPU is pinned exactly or within a stated tolerance: the loop is bit-identical to
a straight re-statement of the loop at commit c9b3e7c run in the same process; the same run twice
gives identical numbers; the CUDA-path settings on CPU stay within a tolerance of the plain loop;
the loss falls. Recorded values (`assets/train_golden.json`) depend on the CPU's kernels, so they
are kept per torch build, vector ISA and CPU vendor: a machine with a record must reproduce it
exactly, and every record must hold within the cross-CPU tolerance. Record this machine's values
with `python -m tests.test_train_pinned` (one torch thread, like the tests).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from nas_lib.data.datasets import ImageDataset, load_dataset
from nas_lib.space import get_space
from nas_lib.train import TrainConfig, train_and_evaluate
from tests.conftest import make_tiny_cnn

GOLDEN_PATH = Path(__file__).parent / "assets" / "train_golden.json"
HYBRID = (
    "sequential:cnn(planes=16,stride=2,cardinality=1,base_width=32) > residual:cnn(planes=16,stride=1,cardinality=1,base_width=32)"
    " > residual:vit(num_heads=4,mlp_ratio=4,qkv_dim=192,window_size=7) > sequential:mamba(d_state=8,expand=1,d_conv=2)"
)
# Across CPUs the same run drifts: the record from another machine and this AMD AVX2 one differ by
# up to 9.8e-4 relative in a loss (cnn), with equal accuracies. Three times that still fails a
# changed loop: another seed moves the losses by 5.3e-3 (cnn) and 1.8e-2 (hybrid), a learning rate
# 10% higher by 1.2e-2 and 3.5e-3 (measured on this machine, torch 2.13.0+cpu).
CROSS_CPU_REL = 3e-3
History = list[dict[str, float]]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The values are recorded with one thread; reductions differ with more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cpu_key() -> str:
    """Names what the recorded values depend on: the torch build, the vector ISA it dispatches to, the CPU vendor."""
    vendor = "unknown-vendor"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        vendor = next((line.split(":")[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("vendor_id")), vendor)
    return f"torch {torch.__version__} / {torch.backends.cpu.get_cpu_capability()} / {vendor or platform.processor()}"


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


def reference_history(model: nn.Module, data: ImageDataset, cfg: TrainConfig) -> History:
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


@functools.cache
def case_data(case: str) -> ImageDataset:
    return CASES[case][0]()


def run_loop(case: str, **changes: object) -> History:
    """One training of a case by `train_and_evaluate`, with `changes` applied to its config."""
    _, make_model, cfg = CASES[case]
    data = case_data(case)
    torch.set_num_threads(1)
    result = train_and_evaluate(make_model(data), data, dataclasses.replace(cfg, **changes))  # type: ignore[arg-type]
    assert result.state == "ok"
    assert result.metrics["val_accuracy"] == result.history[-1]["val_accuracy"]
    return result.history


@functools.cache
def default_history(case: str) -> History:
    """The default CPU run of a case, computed once per process and shared by the tests below."""
    return run_loop(case)


def golden_records() -> dict[str, dict[str, History]]:
    return json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))["records"]


def assert_close(got: History, want: History, rel: float, samples: int, against: str) -> None:
    """Epoch by epoch: losses within `rel`, validation accuracy within one of `samples`."""
    assert [h["epoch"] for h in got] == [h["epoch"] for h in want], against
    for g, w in zip(got, want, strict=True):
        assert g["train_loss"] == pytest.approx(w["train_loss"], rel=rel), (against, g["epoch"])
        assert g["val_loss"] == pytest.approx(w["val_loss"], rel=rel), (against, g["epoch"])
        assert abs(g["val_accuracy"] - w["val_accuracy"]) <= 1 / samples + 1e-12, (against, g["epoch"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_cpu_loop_is_bit_identical_to_the_plain_reference(case: str) -> None:
    make_data, make_model, cfg = CASES[case]
    data = case_data(case)
    assert default_history(case) == reference_history(make_model(data), data, cfg)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_run_twice_gives_identical_numbers(case: str) -> None:
    assert run_loop(case) == default_history(case)


@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_path_settings_on_cpu_stay_within_tolerance_of_the_plain_loop(case: str) -> None:
    # NHWC layout and a NaN check every 25 steps: what the CUDA path turns on, run on this CPU.
    fast = run_loop(case, channels_last=True, check_every=25)
    assert_close(fast, default_history(case), rel=CROSS_CPU_REL, samples=len(case_data(case).val_y), against="the default CPU run")


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_training_loss_falls(case: str) -> None:
    history = default_history(case)
    assert all(later["train_loss"] < earlier["train_loss"] for earlier, later in zip(history, history[1:]))


def test_the_cnn_learns_beyond_chance() -> None:
    assert default_history("cnn")[-1]["val_accuracy"] > 3 / case_data("cnn").num_classes


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_cpu_with_a_record_reproduces_it_exactly(case: str) -> None:
    records = golden_records()
    if cpu_key() not in records:
        pytest.skip(f"no values recorded for '{cpu_key()}' (recorded: {sorted(records)}); record them with python -m tests.test_train_pinned")
    assert default_history(case) == records[cpu_key()][case]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_record_holds_on_this_cpu_within_the_cross_cpu_tolerance(case: str) -> None:
    records = golden_records()
    assert len(records) >= 2, "records from at least two CPUs make the cross-CPU tolerance a measured one"
    for key, record in records.items():
        assert_close(default_history(case), record[case], rel=CROSS_CPU_REL, samples=len(case_data(case).val_y), against=key)


def record_this_cpu() -> None:
    """Adds (or replaces) this machine's values in the golden file."""
    torch.set_num_threads(1)
    golden = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
    golden["records"][cpu_key()] = {case: default_history(case) for case in sorted(CASES)}
    GOLDEN_PATH.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    print(f"recorded {cpu_key()} in {GOLDEN_PATH}")


if __name__ == "__main__":
    record_this_cpu()
