"""Short training and held-out scoring of finalist architectures (plain PyTorch, no Prefect).

Example:
    >>> from nas_lib.data.datasets import load_dataset
    >>> from nas_lib.train import TrainConfig, train_and_evaluate
    >>> data = load_dataset("digits")
    >>> result = train_and_evaluate(model, data, TrainConfig(epochs=3))  # doctest: +SKIP
    >>> result.metrics["val_accuracy"]  # doctest: +SKIP
"""

from nas_lib.train.config import TrainConfig, TrainResult
from nas_lib.train.device import resolve_device
from nas_lib.train.loop import NonFiniteLossError, train_and_evaluate
from nas_lib.train.metrics import classification_report, confusion_matrix
from nas_lib.train.progress import BatchProgress
from nas_lib.train.runtime import Execution, resolve_execution

__all__ = [
    "BatchProgress",
    "Execution",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "classification_report",
    "confusion_matrix",
    "resolve_device",
    "resolve_execution",
    "train_and_evaluate",
]
