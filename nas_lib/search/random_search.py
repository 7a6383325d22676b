"""Random search: uniform samples of the space, never repeating one.

Reference: L. Li and A. Talwalkar, "Random Search and Reproducibility for Neural Architecture
Search", UAI 2019, arXiv 1902.07638 (the baseline every NAS method must beat).
"""

from __future__ import annotations

from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Asks uniform samples of the space; the answer is the best one evaluated."""

    name = "random"

    def _propose(self, n: int) -> list[Spec]:
        return [self.fresh(lambda: self.space.sample(self.rng)) for _ in range(n)]
