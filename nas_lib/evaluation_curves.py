"""One-vs-rest ROC curves and AUC of a trained classifier (plain numpy, scikit-learn, matplotlib).

Each class is scored against all others by its softmax probability; the macro AUC averages the
classes that appear both as positives and negatives. Method: Fawcett, "An introduction to ROC
analysis", Pattern Recognition Letters 27 (2006).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def predict_proba(model: nn.Module, x: Tensor, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities (N x classes) of ``model`` in eval mode, on CPU, in batches."""
    model = model.to("cpu").eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            parts.append(torch.softmax(model(x[start : start + batch_size]).float(), dim=1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def roc_curves(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Per class: false/true positive rates, thresholds-free, and AUC; plus the macro AUC.

    Returns:
        ``{"classes": [{"name", "fpr", "tpr", "auc"}, ...], "macro_auc": float}``; a class
        absent from ``labels`` (or present alone) has ``auc`` None and no curve.
    """
    from sklearn.metrics import auc, roc_curve

    classes: list[dict[str, Any]] = []
    for k, name in enumerate(class_names):
        positive = labels == k
        if positive.all() or not positive.any():
            classes.append({"name": str(name), "fpr": [], "tpr": [], "auc": None})
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        classes.append({"name": str(name), "fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist(), "auc": float(auc(fpr, tpr))})
    scored = [c["auc"] for c in classes if c["auc"] is not None]
    return {"classes": classes, "macro_auc": float(np.mean(scored)) if scored else float("nan")}


def write_roc_plot(curves: dict[str, Any], path: str | Path, title: str = "ROC one-vs-rest") -> Path:
    """Draws every class's curve (AUC in the legend, at most 20 entries) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = [c for c in curves["classes"] if c["auc"] is not None]
    for c in drawn:
        ax.plot(c["fpr"], c["tpr"], lw=1, label=f"{c['name']} ({c['auc']:.3f})" if len(drawn) <= 20 else None)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: macro AUC {curves['macro_auc']:.3f}")
    if len(drawn) <= 20:
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
