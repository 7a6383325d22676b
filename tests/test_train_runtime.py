"""The execution settings of a run: CPU defaults stay plain, the CUDA path's choices, deferred
non-finite checks, channels-last, torch.compile and runs in separate worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch
from torch import nn

from nas_lib.data.datasets import ImageDataset, load_dataset
from nas_lib.train import Execution, TrainConfig, resolve_execution, train_and_evaluate
from tests.conftest import make_tiny_cnn


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_dataset("digits", max_items=200, seed=0)


class NanAtBatch(nn.Module):
    """A tiny CNN whose training loss becomes NaN at the ``bad``-th training batch it sees."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.net, self.bad, self.calls = make_tiny_cnn(), bad, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls == self.bad:
                return logits * float("nan")
        return logits


def test_cpu_defaults_are_the_plain_path() -> None:
    ex = resolve_execution(TrainConfig(), "cpu")
    assert ex == Execution("cpu", None, False, None, 1, False)
    assert resolve_execution(TrainConfig(precision="fp32", check_every=7, channels_last=True), "cpu").check_every == 7


def test_cuda_defaults_are_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU on the test machine: only the capability query is answered, as an A100/H100 would.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    ex = resolve_execution(TrainConfig(), "cuda:1")
    assert (ex.autocast_dtype, ex.channels_last, ex.compile_backend, ex.fused_optimizer) == (torch.bfloat16, True, None, True)
    assert ex.check_every > 1 and ex.is_cuda
    assert resolve_execution(TrainConfig(precision="fp32", channels_last=False, check_every=1), "cuda:0").autocast_dtype is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100: bf16 only emulated
    assert resolve_execution(TrainConfig(), "cuda:0").autocast_dtype is None
    assert resolve_execution(TrainConfig(precision="bf16"), "cuda:0").autocast_dtype is torch.bfloat16


def test_bad_settings_are_refused(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    with pytest.raises(ValueError, match="CUDA only"):
        train_and_evaluate(tiny_cnn(), digits, TrainConfig(precision="bf16"))
    with pytest.raises(ValueError, match="unknown torch.compile backend 'fast'.*inductor"):
        train_and_evaluate(tiny_cnn(), digits, TrainConfig(compile="fast"))
    for bad in (dict(precision="fp16"), dict(check_every=0), dict(compile=" ")):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_cudnn_autotuning_is_scoped_to_the_run() -> None:
    before = torch.backends.cudnn.benchmark
    cuda = Execution("cuda:0", torch.bfloat16, True, None, 25, True)
    with cuda.backend_flags():
        assert torch.backends.cudnn.benchmark
    with resolve_execution(TrainConfig(), "cpu").backend_flags():
        assert torch.backends.cudnn.benchmark == before
    assert torch.backends.cudnn.benchmark == before


@pytest.mark.parametrize("check_every", [1, 4, 100])
def test_deferred_check_names_the_first_bad_batch(digits: ImageDataset, check_every: int) -> None:
    steps = -(-len(digits.train_y) // 32)  # 5 batches per epoch
    result = train_and_evaluate(NanAtBatch(steps + 3), digits, TrainConfig(epochs=3, batch_size=32, patience=3, check_every=check_every))
    assert result.state == "failed" and "non-finite training loss (nan) at epoch 2, batch 3" in result.error
    assert result.epochs_run == 1 and result.best_state_dict is not None  # epoch 2 is never evaluated


def test_check_cadence_does_not_change_the_numbers(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    cfg = TrainConfig(epochs=2, batch_size=32, seed=2)
    every_step = train_and_evaluate(tiny_cnn(), digits, cfg)
    per_epoch = train_and_evaluate(tiny_cnn(), digits, TrainConfig(epochs=2, batch_size=32, seed=2, check_every=1000))
    assert every_step.history == per_epoch.history


def test_channels_last_on_cpu_trains_the_same_network(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    cfg = TrainConfig(epochs=2, batch_size=32, seed=2)
    plain = train_and_evaluate(tiny_cnn(), digits, cfg)
    model = tiny_cnn()
    nhwc = train_and_evaluate(model, digits, TrainConfig(epochs=2, batch_size=32, seed=2, channels_last=True))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.history, nhwc.history, strict=True):  # another conv kernel: rounding differs
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3) and b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3)


def test_compiled_model_trains_and_keeps_plain_weight_names(digits: ImageDataset, tiny_cnn: Callable[..., nn.Module]) -> None:
    cfg = TrainConfig(epochs=2, batch_size=32, seed=2)
    plain = train_and_evaluate(tiny_cnn(), digits, cfg)
    model = tiny_cnn()
    compiled = train_and_evaluate(model, digits, TrainConfig(epochs=2, batch_size=32, seed=2, compile="eager"))
    assert compiled.state == "ok" and set(compiled.best_state_dict) == set(model.state_dict())
    for a, b in zip(plain.history, compiled.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5) and b["val_accuracy"] == a["val_accuracy"]


def _train_in_worker(seed: int) -> list[dict[str, float]]:
    torch.set_num_threads(1)
    data = load_dataset("digits", max_items=200, seed=0)
    return train_and_evaluate(make_tiny_cnn(seed), data, TrainConfig(epochs=2, batch_size=32, seed=seed)).history


def test_runs_in_parallel_worker_processes_match_serial_runs() -> None:
    """Several architectures per device are several worker processes: nothing is shared."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parallel = list(pool.map(_train_in_worker, [1, 2]))
    before = torch.get_num_threads()
    try:
        serial = [_train_in_worker(seed) for seed in (1, 2)]
    finally:
        torch.set_num_threads(before)
    assert parallel == serial and parallel[0] != parallel[1]
