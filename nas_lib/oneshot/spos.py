"""Single-path one-shot (SPOS) on the NB201 supernet: Guo et al., "Single Path One-Shot Neural
Architecture Search with Uniform Sampling", ECCV 2020, arXiv 1904.00420.

Each step trains one uniformly sampled cell. With ``sandwich`` (Yu et al., BigNAS, ECCV 2020,
arXiv 2003.11142) the step also trains the largest and the smallest cell and sums the three
losses. NB201's operations are not nested like BigNAS' channel widths, so the rule applies only
loosely; we take largest = every edge ``nor_conv_3x3`` (the most parameters and FLOPs) and
smallest = every edge ``skip_connect`` (parameter-free; all-``none`` would cut the input off
the classifier and train nothing but the stem, reductions and head). On a restricted space each
edge falls back along the size order below.

The answer: the best of ``candidates`` uniformly sampled cells by inherited-weight accuracy on
the val half after BN recalibration (the paper's evolutionary search is replaced by sampling).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from nas_lib.oneshot.scoring import inherited_accuracy
from nas_lib.oneshot.supernet import Path
from nas_lib.oneshot.trainer import METHODS, OneShotMethod
from nas_lib.space.nb201 import NB201Arch

# Largest first. The smallest cell takes the reverse order with 'none' last.
SIZE_ORDER = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none")
SMALL_ORDER = ("skip_connect", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "none")


@METHODS.register("spos")
class SPOS(OneShotMethod):
    """Uniform single-path training (plus the sandwich's largest and smallest cells)."""

    def extreme_path(self, order: tuple[str, ...]) -> Path:
        """On each edge, the first candidate of `order` the edge allows."""
        return tuple(allowed.index(next(op for op in order if op in allowed)) for allowed in self.space.edge_ops)

    def random_path(self) -> Path:
        return tuple(int(torch.randint(len(allowed), ())) for allowed in self.space.edge_ops)

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        paths = [self.random_path()]
        if self.config.sandwich:
            paths += [self.extreme_path(SIZE_ORDER), self.extreme_path(SMALL_ORDER)]
        loss = sum(self.criterion(self.model(x_train, path=p), y_train) for p in paths)
        self.weight_update(loss)
        return float(loss.detach()) / len(paths)

    def answer(self, candidates: int = 100) -> NB201Arch:
        """The best of `candidates` sampled cells (seeded by the config's seed) by inherited accuracy."""
        rng = np.random.default_rng(self.config.seed)
        cells = list(dict.fromkeys(self.space.sample(rng) for _ in range(candidates)))
        scores = [inherited_accuracy(self.model, self.model.path_of(c.ops), self.data) for c in cells]
        return cells[int(np.argmax(scores))]
