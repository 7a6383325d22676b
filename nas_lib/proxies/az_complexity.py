"""AZ-NAS complexity: forward multiply-adds per image, counted in the shared gradient pass.

Lee and Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
arXiv 2403.19232, use the network's FLOPs as the complexity proxy (larger networks tend to be
more accurate within a space). Here every Conv2d and Linear adds (output elements per image) x
(input channels per group x kernel area, or input features) multiply-adds, read by hooks in
the same forward that the other three AZ-NAS proxies use. Attention score products and
element-wise operations are not counted (the ``flops`` proxy counts them, at the cost of its
own forward).
"""

from __future__ import annotations

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import stage_pass


@register_proxy
class Complexity(Proxy):
    """Conv2d/Linear multiply-adds per image / 1e6 (higher is better)."""

    name = "az_complexity"
    version = "2"
    higher_is_better = True
    needs = frozenset({"macs"})

    def compute(self, ctx: ScoringContext) -> float:
        macs = stage_pass(ctx).macs
        if macs is None:
            raise ValueError("the gradient pass counted no multiply-adds")
        return macs / 1e6
