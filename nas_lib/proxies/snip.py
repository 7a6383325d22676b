"""SNIP: connection sensitivity, sum over weights of |w * dL/dw| at initialisation.

Lee, Ajanthan, Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
ICLR 2019, arXiv 1810.02340; used as a NAS proxy (sum over all Conv2d/Linear weights) by
Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, arXiv 2101.08134.
Cross-entropy on a real batch, train-mode network, as in NASLib.
"""

from __future__ import annotations

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import WEIGHT_GRADS, gradient_pass


@register_proxy
class Snip(Proxy):
    """Sum of |w * grad w| (higher is better)."""

    name = "snip"
    version = "1"
    higher_is_better = True
    needs = frozenset({WEIGHT_GRADS})

    def compute(self, ctx: ScoringContext) -> float:
        g = gradient_pass(ctx)
        total = 0.0
        for layer, grad in zip(g.layers, g.get(WEIGHT_GRADS)):
            if grad is not None:
                total += float((layer.weight.detach() * grad).abs().sum())
        return total
