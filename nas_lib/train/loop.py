"""Short supervised training of one finalist: AdamW, cosine schedule, early stopping.

Finalists are trained for a few epochs only, to rank them, so the loop favours robustness: an
out-of-memory error or a non-finite loss ends that candidate with ``state="failed"`` and the
reason, instead of stopping the whole pipeline. Any other exception is a bug and propagates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nas_lib.data.datasets import ImageDataset
from nas_lib.train.config import TrainConfig, TrainResult
from nas_lib.train.device import resolve_device
from nas_lib.train.metrics import classification_report

Progress = Callable[[dict[str, Any]], None]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class _Run:
    """Mutable record of a run in progress, so a failure can still report what was done."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.best_accuracy = -1.0
        self.best_state: dict[str, Tensor] | None = None
        self.best_eval: tuple[float, Tensor] | None = None  # (val_loss, predictions)
        self.stale_epochs = 0


def train_and_evaluate(
    model: nn.Module,
    data: ImageDataset,
    cfg: TrainConfig,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TrainResult:
    """Trains ``model`` on ``data.train_*`` and scores its best epoch on ``data.val_*``.

    AdamW with a cosine learning-rate decay over all planned steps; after every epoch the
    validation accuracy is measured, and training stops once it has not improved for
    ``cfg.patience`` epochs. The best epoch's weights are loaded back into ``model`` (which is
    left on ``device``) and returned in ``best_state_dict``.

    Args:
        model: a fresh network whose output is ``(N, data.num_classes)`` logits.
        data: the split dataset.
        cfg: the training budget and optimiser settings.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (see `resolve_device`).
        progress: called after each epoch with that epoch's history entry plus ``epochs``
            (planned) and ``seconds`` (elapsed).

    Returns:
        A `TrainResult`; ``state="failed"`` with ``error`` set on out-of-memory or a non-finite
        loss (never raised for those).

    Raises:
        ValueError: an unavailable device was requested.
    """
    device = resolve_device(device)
    run, start = _Run(), time.perf_counter()
    cuda_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda_devices):  # seeding must not leak into the caller
        torch.manual_seed(cfg.seed)
        try:
            _fit(model, data, cfg, device, run, progress, start)
        except NonFiniteLossError as err:
            return _failed(run, str(err), start)
        except (RuntimeError, MemoryError) as err:
            if not _is_out_of_memory(err):
                raise
            model.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return _failed(run, f"out of memory on {device}: {str(err).splitlines()[0][:300]}", start)
    return _finish(model, data, run, start)


def _fit(model: nn.Module, data: ImageDataset, cfg: TrainConfig, device: str, run: _Run, progress: Progress | None, start: float) -> None:
    """The epoch loop; fills ``run`` with history and the best weights."""
    model.to(device)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    val_x, val_y = data.val_x.to(device), data.val_y.to(device)
    steps = _steps_per_epoch(len(train_y), cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    shuffler = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(train_y), generator=shuffler).to(device)
        train_loss = _train_epoch(model, train_x, train_y, order, cfg.batch_size, steps, optimizer, schedule, loss_fn, epoch)
        val_loss, predictions = _predict(model, val_x, val_y, cfg.batch_size, loss_fn)
        accuracy = (predictions == val_y.cpu()).double().mean().item()
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": accuracy}
        run.history.append(record)
        if progress is not None:
            progress({**record, "epochs": cfg.epochs, "seconds": time.perf_counter() - start})
        if _update_best(run, model, accuracy, val_loss, predictions) >= cfg.patience:
            break


def _steps_per_epoch(n_train: int, cfg: TrainConfig) -> int:
    steps = max(1, math.ceil(n_train / cfg.batch_size))
    return min(steps, cfg.max_batches_per_epoch) if cfg.max_batches_per_epoch else steps


def _train_epoch(model: nn.Module, x: Tensor, y: Tensor, order: Tensor, batch_size: int, steps: int,
                 optimizer: torch.optim.Optimizer, schedule: Any, loss_fn: nn.Module, epoch: int) -> float:
    """One pass (at most ``steps`` batches); returns the mean training loss."""
    model.train()
    total, seen = 0.0, 0
    for step in range(steps):
        idx = order[step * batch_size : (step + 1) * batch_size]
        if len(idx) < 2 and seen:  # batch norm cannot train on a single image
            break
        loss = loss_fn(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss ({loss.item()}) at epoch {epoch}, batch {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, loss_fn: nn.Module) -> tuple[float, Tensor]:
    """Mean validation loss and the predicted class of every validation image (on CPU)."""
    model.eval()
    total, predictions = 0.0, []
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        total += loss_fn(logits, y[start : start + batch_size]).item() * len(logits)
        predictions.append(logits.argmax(dim=1).cpu())
    return total / max(len(y), 1), torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)


def _update_best(run: _Run, model: nn.Module, accuracy: float, val_loss: float, predictions: Tensor) -> int:
    """Keeps the best epoch (by validation accuracy); returns the epochs since it."""
    if accuracy > run.best_accuracy:
        run.best_accuracy, run.stale_epochs = accuracy, 0
        run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        run.best_eval = (val_loss, predictions)
    else:
        run.stale_epochs += 1
    return run.stale_epochs


def _finish(model: nn.Module, data: ImageDataset, run: _Run, start: float) -> TrainResult:
    """Restores the best weights and scores them."""
    assert run.best_state is not None and run.best_eval is not None  # epochs >= 1 ran
    model.load_state_dict(run.best_state)
    val_loss, predictions = run.best_eval
    metrics = classification_report(data.val_y, predictions, data.num_classes)
    metrics["val_loss"] = val_loss
    return TrainResult("ok", None, len(run.history), time.perf_counter() - start, run.history, metrics, run.best_state)


def _failed(run: _Run, reason: str, start: float) -> TrainResult:
    return TrainResult("failed", reason, len(run.history), time.perf_counter() - start, run.history, {}, run.best_state)


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err).lower()
    return "out of memory" in text or "can't allocate memory" in text or "failed to allocate" in text
