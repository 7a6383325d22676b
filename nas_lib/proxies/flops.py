"""FLOPs of one forward pass on one image, in millions (torch.utils.flop_counter).

Baseline proxy from "Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR 2021,
arXiv 2101.08134) and NAS-Bench-Suite-Zero (arXiv 2210.03230). The flop counter counts a
multiply-add as 2 FLOPs.
"""

from __future__ import annotations

import copy

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.space.stats import count_flops


@register_proxy
class Flops(Proxy):
    """Forward FLOPs / 1e6 at batch 1 (higher is better, as in the NASLib convention)."""

    name = "flops"
    version = "1"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        model = ctx.model()
        if ctx.device.type != "cpu":  # count_flops feeds a CPU tensor
            model = copy.deepcopy(model).cpu()
        # count_flops runs in eval mode and restores train mode: the weights and BN statistics
        # of the shared model are left as they were
        return count_flops(model, ctx.input_shape) / 1e6
