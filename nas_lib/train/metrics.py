"""Classification scores from predictions: accuracy, per-class precision/recall/F1, confusion."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def confusion_matrix(targets: Tensor, predictions: Tensor, num_classes: int) -> Tensor:
    """int64 ``num_classes x num_classes`` counts; row = true class, column = predicted class."""
    flat = targets.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_report(targets: Tensor, predictions: Tensor, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1 and the confusion matrix.

    A class that is never predicted (or never present) scores 0 for the undefined ratio rather
    than NaN, the scikit-learn ``zero_division=0`` convention, so macro averages stay finite.
    """
    cm = confusion_matrix(targets, predictions, num_classes).double()
    tp = cm.diagonal()
    precision = _safe_div(tp, cm.sum(dim=0))
    recall = _safe_div(tp, cm.sum(dim=1))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    total = cm.sum().item()
    return {
        "val_accuracy": tp.sum().item() / total if total else 0.0,
        "macro_precision": precision.mean().item(),
        "macro_recall": recall.mean().item(),
        "macro_f1": f1.mean().item(),
        "per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist()},
        "confusion_matrix": cm.long().tolist(),
    }


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))
