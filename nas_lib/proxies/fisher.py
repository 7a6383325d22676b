"""Fisher: the channel-saliency estimate of Fisher pruning, summed over the network.

Theis, Korshunova, Tejani, Huszar, "Faster gaze prediction with dense networks and Fisher
pruning", 2018, arXiv 1801.05787; Turner et al., "BlockSwap: Fisher-guided Block Substitution
for Network Compression on a Budget", ICLR 2020, arXiv 1906.04113; as a NAS proxy in
Abdelfattah et al., ICLR 2021, arXiv 2101.08134. For each Conv2d/Linear output a and its
cross-entropy gradient g: per channel 0.5 * mean over images of (sum over positions a*g)^2.
Each channel's saliency counts once per weight of that channel (its fan-in, in/groups * k * k),
as in the zero-cost reference implementation (Abdelfattah et al.; NASLib), which spreads the
channel value over the channel's weights before summing: a 3x3 conv's channels weigh 9x a 1x1's.
"""

from __future__ import annotations

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import ACTIVATION_GRADS, gradient_pass


@register_proxy
class Fisher(Proxy):
    """Sum of channel Fisher saliencies (higher is better)."""

    name = "fisher"
    version = "2"
    higher_is_better = True
    needs = frozenset({ACTIVATION_GRADS})

    def compute(self, ctx: ScoringContext) -> float:
        g = gradient_pass(ctx)
        acts, grads = g.get(ACTIVATION_GRADS)
        total = 0.0
        for layer, act, grad in zip(g.layers, acts, grads):
            if act is None or grad is None:
                continue
            prod = act * grad
            per_image = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
            fan_in = layer.weight[0].numel()
            total += fan_in * float((0.5 * per_image.double().pow(2).mean(0)).abs().sum())
        return total
