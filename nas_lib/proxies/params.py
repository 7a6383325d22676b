"""Parameter count, in millions: the simplest zero-cost baseline.

As used in "Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR 2021,
arXiv 2101.08134) and NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and
Benchmarks, arXiv 2210.03230), where it correlates with NB201 accuracy about as well as most
proxies.
"""

from __future__ import annotations

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.space.stats import count_parameters


@register_proxy
class Params(Proxy):
    """Trainable parameters / 1e6 (higher is better, as in the NASLib convention)."""

    name = "params"
    version = "1"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        return count_parameters(ctx.model()) / 1e6
