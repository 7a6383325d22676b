"""One-shot methods on the hybrid space's supernet (`nas_lib.oneshot.hybrid_supernet`).

``hybrid_spos``: single-path one-shot. Each training step draws a path: a depth uniform over the
depths the space holds, then an architecture uniform among that depth's (`HybridSpace.sample`; a
uniform draw of the whole space is almost always of the maximal depth). With ``sandwich``
(BigNAS' rule, Yu et al., ECCV 2020, arXiv 2003.11142) the step also trains that path at its
largest and its smallest widths (`extreme`) and sums the three losses: the width dimension is
nested here, unlike NB201's operations, so the rule applies as BigNAS states it. The draw's
random generator is seeded from torch's, which the checkpoint keeps, so a resumed run draws the
same paths as an uninterrupted one.

``hybrid_enas``: ENAS (`nas_lib.oneshot.enas`) with the same controller, whose decisions are the
digits of the space's architecture code (`HybridSpace.code_cardinalities`); a code becomes an
architecture through `HybridSpace.project` (seeded by the code itself, so one code is always one
architecture). The weights train on the paths the controller samples, and the controller learns
by REINFORCE from their accuracy on a validation batch.

Both rank architectures by inherited-weight accuracy on the val half after BN recalibration
(`ranking`, best first): ``hybrid_spos`` ``candidates`` depth-stratified samples, ``hybrid_enas``
the controller's greedy choice and ``candidates`` - 1 samples of it. The answer is the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nas_lib.oneshot.enas import ENAS
from nas_lib.oneshot.hybrid_supernet import HybridSupernet, extreme
from nas_lib.oneshot.scoring import inherited_accuracy
from nas_lib.oneshot.supernet import Path
from nas_lib.oneshot.trainer import METHODS, OneShotMethod
from nas_lib.space.hybrid import HybridArch, HybridSpace


class HybridMethod(OneShotMethod):
    """What the hybrid methods share: the supernet and the ranking by inherited accuracy."""

    space: HybridSpace

    def build_model(self) -> nn.Module:
        if not isinstance(self.space, HybridSpace):
            raise TypeError(f"method {self.name!r} trains the hybrid space's supernet, got {type(self.space).__name__}")
        return HybridSupernet(self.space, tuple(self.data.input_shape), self.data.num_classes)  # type: ignore[arg-type]

    def candidates(self, n: int) -> list[HybridArch]:
        """The architectures `ranking` scores."""
        raise NotImplementedError

    def ranking(self, candidates: int = 100) -> list[tuple[HybridArch, float]]:
        """The `candidates` (duplicates dropped) with their inherited-weight accuracy (%), best first."""
        archs = list(dict.fromkeys(self.candidates(candidates)))
        scored = [(a, inherited_accuracy(self.model, a, self.data)) for a in archs]
        return sorted(scored, key=lambda item: -item[1])

    def answer(self, candidates: int = 100) -> HybridArch:
        return self.ranking(candidates)[0][0]


@METHODS.register("hybrid_spos")
class HybridSPOS(HybridMethod):
    """Uniform single-path training of the hybrid supernet (plus the sandwich's extremes)."""

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

    def candidates(self, n: int) -> list[HybridArch]:
        """`n` depth-stratified samples, seeded by the config's seed."""
        return self.space.spread_sample(n, np.random.default_rng(self.config.seed))


@METHODS.register("hybrid_enas")
class HybridENAS(HybridMethod, ENAS):  # type: ignore[misc]  # answer: HybridMethod's (an architecture, not a cell)
    """ENAS whose controller writes the hybrid space's architecture code."""

    def decisions(self) -> Sequence[Sequence[Any]]:
        return [range(card) for card in self.space.code_cardinalities()]

    def subnet(self, path: Path) -> HybridArch:
        return self.space.project(path, np.random.default_rng(list(path)))

    def candidates(self, n: int) -> list[HybridArch]:
        return [self.subnet(p) for p in self.drawn(n)]
