"""Gradient norm: sum over Conv2d/Linear layers of the L2 norm of dL/dW at initialisation.

Abdelfattah, Mehrotra, Dudziak, Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021,
arXiv 2101.08134 (the `grad_norm` baseline). Cross-entropy on a real batch, train-mode
network, per-layer norms summed, as in NASLib.
"""

from __future__ import annotations

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import WEIGHT_GRADS, gradient_pass


@register_proxy
class GradNorm(Proxy):
    """Sum of per-layer ||grad W||_2 (higher is better)."""

    name = "grad_norm"
    version = "1"
    higher_is_better = True
    needs = frozenset({WEIGHT_GRADS})

    def compute(self, ctx: ScoringContext) -> float:
        g = gradient_pass(ctx)
        return float(sum(float(grad.norm()) for grad in g.get(WEIGHT_GRADS) if grad is not None))
