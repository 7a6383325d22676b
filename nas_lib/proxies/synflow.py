"""SynFlow: synaptic flow of a network with all weights made positive, on an all-ones input.

Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without any data by iteratively
conserving synaptic flow", NeurIPS 2020, arXiv 2006.05467; as a NAS proxy in Abdelfattah et al.,
"Zero-Cost Proxies for Lightweight NAS", ICLR 2021, arXiv 2101.08134. NASLib's convention:
a copy of the network in float64, every parameter and buffer replaced by its absolute value,
BatchNorm in eval mode (fresh statistics: close to identity), input of ones at batch 1,
R = sum of the outputs, score = sum over Conv2d/Linear weights of |w * dR/dw|. Data-free.
"""

from __future__ import annotations

import copy

import torch

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import prunable_layers


@register_proxy
class Synflow(Proxy):
    """Sum of |w * dR/dw| of the linearised network (higher is better)."""

    name = "synflow"
    version = "1"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        net = copy.deepcopy(ctx.model()).double().eval()
        with torch.no_grad():
            for tensor in list(net.parameters()) + list(net.buffers()):
                if tensor.is_floating_point():
                    tensor.abs_()
        layers = prunable_layers(net)
        ones = torch.ones((1, *ctx.input_shape), dtype=torch.float64, device=ctx.device)
        out = net(ones)
        grads = torch.autograd.grad(out.sum(), [m.weight for m in layers], allow_unused=True)
        total = torch.zeros((), dtype=torch.float64)
        for layer, grad in zip(layers, grads):
            if grad is not None:
                total += (layer.weight.detach() * grad).abs().sum().cpu()
        return float(total)
