"""Scoring subnets of a trained supernet with inherited weights, and how well that ranks cells.

A subnet's batch-norm statistics in the supernet are a mixture over every path trained, so before
scoring a cell its running statistics are recalibrated: reset, then re-estimated (cumulative
average) from a few train-half batches forwarded through that cell in train mode, then eval
(Guo et al., "Single Path One-Shot NAS with Uniform Sampling", ECCV 2020, arXiv 1904.00420).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from nas_lib.data.datasets import ImageDataset
from nas_lib.oneshot.supernet import Supernet
from nas_lib.space.nb201 import NB201Space

RECALIBRATION_SEED = 0  # the same recalibration batches for every cell, so scores compare


def recalibrate_bn(model: nn.Module, path: Any, x: torch.Tensor, batches: int = 4, batch_size: int = 64) -> None:
    """Re-estimates every BN's running statistics for the subnet `path` from `batches` batches of
    `x` (a fixed seeded choice); leaves the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(RECALIBRATION_SEED))
    model.train()
    with torch.no_grad():
        for b in range(batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            if len(idx):
                model(x[idx], path=path)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


def inherited_accuracy(model: nn.Module, path: Any, data: ImageDataset, recal_batches: int = 4, batch_size: int = 64) -> float:
    """Val-half accuracy (%) of the subnet `path` with the supernet's weights, after BN
    recalibration on the train half."""
    recalibrate_bn(model, path, data.train_x, recal_batches, batch_size)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data.val_y), 500):
            logits = model(data.val_x[start : start + 500], path=path)
            correct += int((logits.argmax(1) == data.val_y[start : start + 500]).sum())
    return 100.0 * correct / max(len(data.val_y), 1)


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman rho between inherited-weight accuracy and a table's accuracy over sampled cells."""

    rho: float
    cells: tuple[str, ...]
    inherited: tuple[float, ...]
    table: tuple[float, ...]
    seconds: float


def rank_correlation(
    model: Supernet, space: NB201Space, data: ImageDataset, table: Mapping[str, float], n: int = 200, seed: int = 0
) -> RankCorrelation:
    """Scores `n` cells, drawn without replacement from the table's cells that lie in `space`,
    with inherited weights and correlates the scores with the table (Spearman rho)."""
    start = time.perf_counter()
    pool = sorted(a for a in table if space.contains(space.from_string(a)))
    if n > len(pool):
        raise ValueError(f"asked for {n} cells but the table has {len(pool)} in the space")
    cells = [pool[i] for i in np.random.default_rng(seed).choice(len(pool), size=n, replace=False)]
    scores = [inherited_accuracy(model, model.path_of(space.from_string(c).ops), data) for c in cells]
    truth = [float(table[c]) for c in cells]
    rho = float(spearmanr(scores, truth).statistic) if len(set(scores)) > 1 and len(set(truth)) > 1 else float("nan")
    return RankCorrelation(rho, tuple(cells), tuple(scores), tuple(truth), time.perf_counter() - start)
