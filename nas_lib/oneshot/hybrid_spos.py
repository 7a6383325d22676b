"""Single-path one-shot search on the hybrid space's supernet (`nas_lib.oneshot.hybrid_supernet`).

Each training step draws a path: a depth uniform over the depths the space holds, then an
architecture uniform among that depth's (`HybridSpace.sample`; a uniform draw of the whole space
is almost always of the maximal depth). With ``sandwich`` (BigNAS' rule, Yu et al., ECCV 2020,
arXiv 2003.11142) the step also trains that path at its largest and its smallest widths
(`extreme`) and sums the three losses: the width dimension is nested here, unlike NB201's
operations, so the rule applies as BigNAS states it.

The draw's random generator is seeded from torch's, which the checkpoint keeps, so a resumed
run draws the same paths as an uninterrupted one.

The answer is the best of ``candidates`` depth-stratified samples by inherited-weight accuracy on
the val half after BN recalibration (`ranking` returns them all, best first).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from nas_lib.oneshot.hybrid_supernet import HybridSupernet, extreme
from nas_lib.oneshot.scoring import inherited_accuracy
from nas_lib.oneshot.trainer import METHODS, OneShotMethod
from nas_lib.space.hybrid import HybridArch, HybridSpace


@METHODS.register("hybrid_spos")
class HybridSPOS(OneShotMethod):
    """Uniform single-path training of the hybrid supernet (plus the sandwich's extremes)."""

    space: HybridSpace

    def build_model(self) -> nn.Module:
        if not isinstance(self.space, HybridSpace):
            raise TypeError(f"method 'hybrid_spos' trains the hybrid space's supernet, got {type(self.space).__name__}")
        return HybridSupernet(self.space, tuple(self.data.input_shape), self.data.num_classes)  # type: ignore[arg-type]

    def sample_path(self) -> HybridArch:
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        return self.space.spread_sample(1, rng)[0]

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        path = self.sample_path()
        paths = [path]
        if self.config.sandwich:
            paths += [extreme(self.space, path, largest=True), extreme(self.space, path, largest=False)]
        loss = sum(self.criterion(self.model(x_train, path=p), y_train) for p in paths)
        self.weight_update(loss)
        return float(loss.detach()) / len(paths)

    def ranking(self, candidates: int = 100) -> list[tuple[HybridArch, float]]:
        """`candidates` depth-stratified samples (seeded by the config's seed, duplicates dropped)
        with their inherited-weight accuracy (%), best first."""
        rng = np.random.default_rng(self.config.seed)
        archs = list(dict.fromkeys(self.space.spread_sample(candidates, rng)))
        scored = [(a, inherited_accuracy(self.model, a, self.data)) for a in archs]
        return sorted(scored, key=lambda item: -item[1])

    def answer(self, candidates: int = 100) -> HybridArch:
        return self.ranking(candidates)[0][0]
