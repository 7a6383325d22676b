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
from nas_lib.failures import is_out_of_memory
from nas_lib.train.config import TrainConfig, TrainResult
from nas_lib.train.device import resolve_device
from nas_lib.train.metrics import classification_report
from nas_lib.train.progress import BatchReporter, OnBatches
from nas_lib.train.runtime import Execution, resolve_execution

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
    on_batches: OnBatches | None = None,
    report_every_s: float = 30.0,
) -> TrainResult:
    """Trains ``model`` on ``data.train_*`` and scores its best epoch on ``data.val_*``.

    AdamW with a cosine learning-rate decay over all planned steps; after every epoch the
    validation accuracy is measured, and training stops once it has not improved for
    ``cfg.patience`` epochs. The best epoch's weights are loaded back into ``model`` (which is
    left on ``device``) and returned in ``best_state_dict``. On CUDA the defaults run the fast
    path of `nas_lib.train.runtime` (bf16 autocast, channels-last, no per-step host sync); on
    CPU the loop is plain fp32 eager PyTorch.

    Args:
        model: a fresh network whose output is ``(N, data.num_classes)`` logits.
        data: the split dataset.
        cfg: the training budget, optimiser and execution settings.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (see `resolve_device`).
        progress: called after each epoch with that epoch's history entry plus ``epochs``
            (planned) and ``seconds`` (elapsed).
        on_batches: called within each epoch with a `BatchProgress` (batches done, images per
            second, time left), at most every ``report_every_s`` seconds and after the epoch's
            last batch.
        report_every_s: seconds between ``on_batches`` calls within an epoch (0: every batch).

    Returns:
        A `TrainResult`; ``state="failed"`` with ``error`` set on out-of-memory or a non-finite
        loss (never raised for those).

    Raises:
        ValueError: an unavailable device was requested, bf16 on a CPU, or an unknown
            ``cfg.compile`` backend.
    """
    device = resolve_device(device)
    execution = resolve_execution(cfg, device)
    run, start = _Run(), time.perf_counter()
    cuda_devices = [torch.device(device).index or 0] if execution.is_cuda else []
    with torch.random.fork_rng(devices=cuda_devices), execution.backend_flags():  # seeding must not leak into the caller
        torch.manual_seed(cfg.seed)
        try:
            _fit(model, data, cfg, execution, run, (progress, on_batches, report_every_s), start)
        except NonFiniteLossError as err:
            return _failed(run, str(err), start)
        except (RuntimeError, MemoryError) as err:
            return _failed(run, release_after_oom(err, model, execution, device), start)
    return _finish(model, data, run, start)


def release_after_oom(err: RuntimeError | MemoryError, model: nn.Module, execution: Execution, device: str) -> str:
    """The failure text of an out-of-memory `err`, after moving `model` off the device and freeing
    the CUDA cache; any other error is raised again (it is a bug, not a failed candidate)."""
    if not is_out_of_memory(err):
        raise err
    model.to("cpu")
    if execution.is_cuda:
        torch.cuda.empty_cache()
    return f"out of memory on {device}: {str(err).splitlines()[0][:300]}"


class _Stepper:
    """What one optimisation step and one evaluation pass need, set up once per run."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, execution: Execution, steps: int) -> None:
        self.model, self.execution, self.batch_size = model, execution, cfg.batch_size
        self.forward = execution.prepare_model(model)
        self.optimizer = execution.optimizer(model, cfg.lr, cfg.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs * steps)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        with self.execution.autocast():
            return self.loss_fn(self.forward(x), y)

    def update(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()


_Callbacks = tuple[Progress | None, OnBatches | None, float]  # per epoch, within an epoch, seconds between the latter


def _fit(model: nn.Module, data: ImageDataset, cfg: TrainConfig, execution: Execution, run: _Run, callbacks: _Callbacks, start: float) -> None:
    """The epoch loop; fills ``run`` with history and the best weights."""
    progress, on_batches, every_s = callbacks
    steps = _steps_per_epoch(len(data.train_y), cfg)
    stepper = _Stepper(model, cfg, execution, steps)
    reporter = BatchReporter(on_batches, every_s, cfg.epochs, steps) if on_batches else None
    train_x, train_y = execution.images(data.train_x), data.train_y.to(execution.device)
    val_x, val_y = execution.images(data.val_x), data.val_y.to(execution.device)
    shuffler = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(train_y), generator=shuffler).to(execution.device)
        train_loss = _train_epoch(stepper, train_x, train_y, order, steps, epoch, reporter)
        val_loss, predictions = _predict(stepper, val_x, val_y)
        accuracy = (predictions == data.val_y).double().mean().item()
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": accuracy}
        run.history.append(record)
        if progress is not None:
            progress({**record, "epochs": cfg.epochs, "seconds": time.perf_counter() - start})
        if _update_best(run, model, accuracy, val_loss, predictions) >= cfg.patience:
            break


def _steps_per_epoch(n_train: int, cfg: TrainConfig) -> int:
    steps = max(1, math.ceil(n_train / cfg.batch_size))
    return min(steps, cfg.max_batches_per_epoch) if cfg.max_batches_per_epoch else steps


def _train_epoch(stepper: _Stepper, x: Tensor, y: Tensor, order: Tensor, steps: int, epoch: int, reporter: BatchReporter | None = None) -> float:
    """One pass (at most ``steps`` batches); returns the mean training loss. ``reporter`` hears
    of every batch (host-side counts only).

    The loss sum stays on the device (float64, so it adds exactly what a Python float would)
    and losses are checked for NaN/inf every ``check_every`` steps, so the host waits for the
    device once per check and once per epoch instead of twice per step.
    """
    stepper.model.train()
    batch_size, check_every = stepper.batch_size, stepper.execution.check_every
    total, seen, batch, unchecked = torch.zeros((), dtype=torch.float64, device=x.device), 0, 0, []
    if reporter is not None:
        reporter.start_epoch(epoch)
    for batch in range(1, steps + 1):
        idx = order[(batch - 1) * batch_size : batch * batch_size]
        if len(idx) < 2 and seen:  # batch norm cannot train on a single image
            batch -= 1
            break
        loss = stepper.loss(stepper.execution.images(x[idx]), y[idx])
        unchecked.append(loss.detach())
        if len(unchecked) >= check_every:
            _check_finite(unchecked, epoch, batch)
        stepper.update(loss)
        total += loss.detach().double() * len(idx)
        seen += len(idx)
        if reporter is not None:
            reporter.batch_done(batch, seen)
    _check_finite(unchecked, epoch, batch)
    if reporter is not None:
        reporter.epoch_done(batch, seen)
    return total.item() / max(seen, 1)


def _check_finite(losses: list[Tensor], epoch: int, last_batch: int) -> None:
    """Raises `NonFiniteLossError` naming the first bad batch of ``losses`` (then empties it)."""
    if not losses:
        return
    finite = torch.isfinite(torch.stack(losses))
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        batch = last_batch - len(losses) + 1 + first
        raise NonFiniteLossError(f"non-finite training loss ({losses[first].item()}) at epoch {epoch}, batch {batch}")
    losses.clear()


@torch.no_grad()
def _predict(stepper: _Stepper, x: Tensor, y: Tensor) -> tuple[float, Tensor]:
    """Mean validation loss and the predicted class of every validation image (on CPU)."""
    stepper.model.eval()
    total, predictions = torch.zeros((), dtype=torch.float64, device=x.device), []
    for start in range(0, len(y), stepper.batch_size):
        logits = _eval_logits(stepper, x[start : start + stepper.batch_size])
        total += stepper.loss_fn(logits, y[start : start + stepper.batch_size]).double() * len(logits)
        predictions.append(logits.argmax(dim=1))
    if not predictions:
        return 0.0, torch.empty(0, dtype=torch.long)
    return total.item() / len(y), torch.cat(predictions).cpu()


def _eval_logits(stepper: _Stepper, x: Tensor) -> Tensor:
    with stepper.execution.autocast():
        return stepper.forward(x).float()


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
