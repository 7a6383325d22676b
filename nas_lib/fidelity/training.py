"""Training to a rung's budget that a later rung continues exactly.

A rung trains an architecture to `budget` epochs under a `RungProtocol` whose cosine schedule
spans `horizon` epochs. With the long schedule (``horizon`` = the largest budget) the rung at 1
epoch is a checkpoint in the middle of the schedule, and the rung at 3 continues from it: the
checkpoint holds the weights, the AdamW moments, the schedule's position and the shuffle
generator, so 1 then 2 more epochs equal 3 epochs straight (bit for bit on the same device).

Training draws no number from torch's global generator (the shuffle has its own, and no block
of the spaces draws in its forward pass), so rungs in threads of one process cannot disturb each
other; only the weight initialisation is seeded globally, under a lock (`build_seeded`). A block
with dropout would need its generator in the checkpoint too. With the short schedule (``horizon`` = ``budget``) every rung is a complete run
of its own and no checkpoint is continued.

The epoch loop is `nas_lib.train.loop`'s own (its stepper, epoch and evaluation pass), so a rung
trained straight to its horizon matches `train_and_evaluate` without early stopping. The
checkpoint travels as bytes: the task that trains a rung returns it with its score, the flow
stores it, and the next rung's task gets it back, on whichever machine that runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from nas_lib.proxies.base import ProxyState
from nas_lib.train.config import TrainConfig
from nas_lib.train.device import resolve_device
from nas_lib.train.loop import NonFiniteLossError, _predict, _Stepper, _steps_per_epoch, _train_epoch, release_after_oom
from nas_lib.train.runtime import resolve_execution

PROTOCOL_VERSION = 1  # bump when the meaning of a rung's score changes, so cached scores are not reused


@dataclass(frozen=True)
class RungProtocol:
    """Everything besides the architecture, the data and the budget that decides a rung's score.

    Attributes:
        horizon: epochs the cosine learning-rate schedule spans (the long schedule: the largest
            budget; the short one: the rung's own budget).
        batch_size: images per optimisation step.
        lr: peak AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        max_batches_per_epoch: cap on steps per epoch (None: the whole training split).
        seed: seeds the weight initialisation, the shuffle and dropout.
    """

    horizon: int
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    max_batches_per_epoch: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"RungProtocol.horizon must be >= 1, got {self.horizon}")

    def train_config(self) -> TrainConfig:
        """The `TrainConfig` of the whole schedule; no early stopping (patience = horizon)."""
        return TrainConfig(
            epochs=self.horizon,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.horizon,
            max_batches_per_epoch=self.max_batches_per_epoch,
            seed=self.seed,
        )

    def version(self) -> str:
        """A short stable name of the protocol: the cache key's version part."""
        text = json.dumps({**asdict(self), "v": PROTOCOL_VERSION}, sort_keys=True)
        return f"h{self.horizon}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


@dataclass
class RungResult:
    """Outcome of `train_to_budget`.

    Attributes:
        state: ``"ok"`` or ``"failed"`` (out of memory, non-finite loss).
        error: why it failed, else None.
        epochs_run: epochs trained in total, those of the continued checkpoint included.
        seconds: wall time of this call.
        history: one ``{epoch, train_loss, val_loss, val_accuracy}`` per epoch since epoch 1.
        checkpoint: the state to continue from (`save_checkpoint` bytes), None on failure.
    """

    state: ProxyState
    error: str | None
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: bytes | None = None

    @property
    def score(self) -> float:
        """Validation accuracy after the last epoch trained (NaN on failure): the rung's score."""
        if self.state != "ok" or not self.history:
            return math.nan
        return float(self.history[-1]["val_accuracy"])


_GLOBAL_RNG = threading.Lock()  # torch's default generator is one per process, shared by the thread runner's tasks


def build_seeded(space: Any, arch: str, data: Any, seed: int) -> nn.Module:
    """`arch` built with its weights initialised under `seed`, the same weights as
    `nas_lib.bench.train` builds; safe beside other threads (they cannot reseed it mid-way) and
    leaves the caller's random state as it was."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return space.build_model(space.from_string(arch), input_shape=tuple(data.input_shape), num_classes=data.num_classes)


def train_to_budget(
    model: nn.Module, data: Any, protocol: RungProtocol, budget: int, device: str = "cpu", checkpoint: bytes | None = None
) -> RungResult:
    """Trains `model` to `budget` epochs in total, continuing `checkpoint` when one is given.

    Args:
        model: the network, freshly built (`build_seeded`); a checkpoint overwrites its weights.
        data: the split `ImageDataset`.
        protocol: the schedule and optimiser (the checkpoint must come from the same protocol).
        budget: total epochs after this call (1 <= budget <= protocol.horizon).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        checkpoint: bytes of an earlier `RungResult.checkpoint` at fewer epochs, or None.

    Returns:
        A `RungResult`; out of memory or a non-finite loss give ``state="failed"``.

    Raises:
        ValueError: a budget outside 1..horizon or a checkpoint of another protocol or past the budget.
    """
    if not 1 <= budget <= protocol.horizon:
        raise ValueError(f"budget {budget} must lie in 1..{protocol.horizon} (the schedule's horizon)")
    device = resolve_device(device)
    cfg = protocol.train_config()
    execution = resolve_execution(cfg, device)
    start, history = time.perf_counter(), []
    with execution.backend_flags():  # never touches torch's global generator (see the module notes)
        try:
            steps = _steps_per_epoch(len(data.train_y), cfg)
            stepper = _Stepper(model, cfg, execution, steps)
            shuffler = torch.Generator().manual_seed(cfg.seed)
            if checkpoint is not None:
                history = _restore(checkpoint, stepper, shuffler, protocol, budget)
            _run_epochs(stepper, data, execution, shuffler, steps, history, budget)
            saved = save_checkpoint(stepper, shuffler, protocol, history)
        except NonFiniteLossError as err:
            return RungResult("failed", str(err), len(history), time.perf_counter() - start, history)
        except (RuntimeError, MemoryError) as err:
            return RungResult("failed", release_after_oom(err, model, execution, device), len(history), time.perf_counter() - start, history)
    return RungResult("ok", None, len(history), time.perf_counter() - start, history, saved)


def _run_epochs(
    stepper: _Stepper, data: Any, execution: Any, shuffler: torch.Generator, steps: int, history: list[dict[str, float]], budget: int
) -> None:
    """Epochs ``len(history) + 1 .. budget``, appended to `history` (the loop of `nas_lib.train.loop._fit`)."""
    train_x, train_y = execution.images(data.train_x), data.train_y.to(execution.device)
    val_x, val_y = execution.images(data.val_x), data.val_y.to(execution.device)
    for epoch in range(len(history) + 1, budget + 1):
        order = torch.randperm(len(train_y), generator=shuffler).to(execution.device)
        train_loss = _train_epoch(stepper, train_x, train_y, order, steps, epoch)
        val_loss, predictions = _predict(stepper, val_x, val_y)
        accuracy = (predictions == data.val_y).double().mean().item()
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": accuracy})


def save_checkpoint(stepper: _Stepper, shuffler: torch.Generator, protocol: RungProtocol, history: list[dict[str, float]]) -> bytes:
    """Everything the next epoch depends on, as bytes (`torch.save` of tensors and plain data)."""
    state = {
        "protocol": protocol.version(),
        "history": history,
        "model": {k: v.detach().cpu() for k, v in stepper.model.state_dict().items()},
        "optimizer": stepper.optimizer.state_dict(),
        "schedule": stepper.schedule.state_dict(),
        "shuffler": shuffler.get_state(),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def checkpoint_epochs(checkpoint: bytes) -> int:
    """Epochs trained in a checkpoint."""
    return len(_load(checkpoint)["history"])


def _load(checkpoint: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True)


def _restore(checkpoint: bytes, stepper: _Stepper, shuffler: torch.Generator, protocol: RungProtocol, budget: int) -> list[dict[str, float]]:
    """Loads a checkpoint into the stepper and the generators; returns its history."""
    state = _load(checkpoint)
    if state["protocol"] != protocol.version():
        raise ValueError(f"checkpoint of protocol {state['protocol']} given to a rung of protocol {protocol.version()}")
    history = [dict(h) for h in state["history"]]
    if len(history) > budget:
        raise ValueError(f"checkpoint at epoch {len(history)} is past the budget {budget}")
    stepper.model.load_state_dict(state["model"])
    stepper.optimizer.load_state_dict(state["optimizer"])
    stepper.schedule.load_state_dict(state["schedule"])
    shuffler.set_state(state["shuffler"])
    return history
