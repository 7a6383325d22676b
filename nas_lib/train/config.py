"""Configuration and result types of the short finalist training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """How long and how hard a finalist is trained before it is scored.

    Attributes:
        epochs: upper bound on passes over the training split (a short budget: finalists are
            ranked, not trained to convergence).
        batch_size: images per optimisation step.
        lr: peak AdamW learning rate; 3e-3 suits small hybrid nets trained for a few epochs.
        weight_decay: AdamW decoupled weight decay.
        patience: epochs without a better validation accuracy before training stops early.
        max_batches_per_epoch: cap on steps per epoch (None: the whole training split); keeps
            large datasets affordable in a search.
        seed: seeds the initial shuffle and any dropout, so a rerun reproduces the numbers.
        label_smoothing: cross-entropy label smoothing.
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"fp32"`` or ``"bf16"``
            (CUDA only: autocast of the forward pass; weights, optimiser and loss stay fp32).
        channels_last: NHWC memory layout for images and conv weights; None: on for CUDA (its
            tensor-core convolutions want it), off on CPU.
        compile: a `torch.compile` backend name (``"inductor"`` is torch's own), or None for
            eager execution. Off by default: compiling a new architecture takes tens of seconds,
            more than a short training of a small network gains from it.
        check_every: steps between non-finite loss checks (each check waits for the device);
            None: 1 on CPU (free there, and a NaN batch never updates the weights), 25 on CUDA.
            The end of every epoch is always checked, before the epoch is evaluated.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    patience: int = 2
    max_batches_per_epoch: int | None = None
    seed: int = 0
    label_smoothing: float = 0.0
    precision: str = "auto"
    channels_last: bool | None = None
    compile: str | None = None
    check_every: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError(f"epochs, batch_size and patience must be >= 1: {self}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"need lr > 0, weight_decay >= 0, 0 <= label_smoothing < 1: {self}")
        if self.max_batches_per_epoch is not None and self.max_batches_per_epoch < 1:
            raise ValueError(f"max_batches_per_epoch must be >= 1 or None: {self}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.check_every is not None and self.check_every < 1:
            raise ValueError(f"check_every must be >= 1 or None: {self}")
        if self.compile is not None and not self.compile.strip():
            raise ValueError("compile must be a torch.compile backend name or None, got an empty string")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for params and Parquet rows."""
        return asdict(self)


@dataclass
class TrainResult:
    """Outcome of `train_and_evaluate`.

    Attributes:
        state: ``"ok"`` or ``"failed"``.
        error: why it failed (out of memory, non-finite loss), else None.
        epochs_run: epochs completed (fewer than ``epochs`` after early stopping or a failure).
        seconds: wall time of training and evaluation.
        history: one dict per completed epoch: ``epoch`` (1-based), ``train_loss``,
            ``val_loss``, ``val_accuracy``.
        metrics: scores of the best epoch's weights on the validation split: ``val_accuracy``,
            ``val_loss``, ``macro_precision``, ``macro_recall``, ``macro_f1``, ``per_class``
            (``{"precision": [...], "recall": [...], "f1": [...]}``, one entry per class) and
            ``confusion_matrix`` (rows: true class, columns: predicted class). Empty on failure.
        best_state_dict: CPU copy of the best epoch's weights (already loaded into the model),
            or None when no epoch completed.
    """

    state: str
    error: str | None
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    best_state_dict: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def scalar_metrics(self) -> dict[str, float]:
        """The float-valued metrics only (what MLflow `log_metrics` accepts)."""
        return {k: float(v) for k, v in self.metrics.items() if isinstance(v, (int, float))}
