"""GraSP: gradient signal preservation, -sum over weights of w * (H g) at initialisation.

Wang, Zhang, Grosse, "Picking Winning Tickets Before Training by Preserving Gradient Flow",
ICLR 2020, arXiv 2002.07376; as a NAS proxy in Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021, arXiv 2101.08134. g = dL/dW of the cross-entropy on a real batch
(train mode), Hg by differentiating g . stop_grad(g); score = sum of -w * Hg over Conv2d/Linear
weights. NASLib computes g with one forward and Hg with a second one on the same batch; both
forwards give the same graph, so one forward with a double-backward serves both here.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import prunable_layers


@register_proxy
class Grasp(Proxy):
    """Sum of -w * Hg (higher is better)."""

    name = "grasp"
    version = "1"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        model = ctx.model()
        x, y = ctx.batch()
        weights = [m.weight for m in prunable_layers(model)]
        # the fused attention kernels have no second derivative: attention blocks (ViT) must
        # run the plain-math path for the Hessian-vector product
        with sdpa_kernel(SDPBackend.MATH):
            loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        used = [(w, g) for w, g in zip(weights, grads) if g is not None]
        z = cast(torch.Tensor, sum((g.detach() * g).sum() for _, g in used))  # a tensor: sum's start 0 plus tensors
        hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
        total = 0.0
        for (w, _), h in zip(used, hg):
            if h is not None:
                total += float((-w.detach() * h).sum())
        return total
