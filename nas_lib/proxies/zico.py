"""ZiCo: zero-shot proxy from the inverse coefficient of variation of the weight gradients.

Li, Li, Zhang, Zhou, Duan, Marculescu, "ZiCo: Zero-shot NAS via Inverse Coefficient of
Variation on Gradients", ICLR 2023, arXiv 2301.11300. The batch is split into `SPLITS`
mini-batches; each gives the cross-entropy gradient of every Conv2d/Linear weight (train mode,
one forward and backward per mini-batch). Per layer, over the weights whose gradient varies
between mini-batches, the score adds log(sum of mean|g| / std(g)) (std over mini-batches, as
numpy's default, ddof 0); a layer whose gradients never vary adds nothing. High mean and low
variance of the gradients mark networks that train fast and generalise.

The paper draws two batches of the training set; here the one fixed proxy batch is split in
two, so ZiCo sees the same images as the other proxies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import prunable_layers

SPLITS = 2  # mini-batches, as the paper's two batches


def minibatch_gradients(ctx: ScoringContext, splits: int = SPLITS) -> list[torch.Tensor]:
    """Per Conv2d/Linear layer, its weight gradients stacked over mini-batches (splits, P)."""
    model = ctx.model()
    x, y = ctx.batch()
    if x.shape[0] < 2 * splits:
        raise ValueError(f"ZiCo needs at least {2 * splits} images to split the batch {splits} ways")
    layers = prunable_layers(model)
    weights = [m.weight for m in layers]
    per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
    for xs, ys in zip(torch.chunk(x, splits), torch.chunk(y, splits)):
        loss = F.cross_entropy(model(xs), ys)
        if not torch.isfinite(loss):
            raise FloatingPointError("the network's loss is not finite")
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        for slot, (g, w) in zip(per_layer, zip(grads, weights)):
            slot.append((torch.zeros_like(w) if g is None else g).reshape(-1).double())
    return [torch.stack(g) for g in per_layer]


def zico_score(stacked: list[torch.Tensor]) -> float:
    """Sum over layers of log(sum over varying weights of mean|g| / std(g))."""
    total = 0.0
    for g in stacked:
        std = g.std(dim=0, unbiased=False)
        varying = std > 0
        if not bool(varying.any()):
            continue
        ratio = float((g.abs().mean(dim=0)[varying] / std[varying]).sum())
        if ratio > 0:
            total += math.log(ratio)
    return total


@register_proxy
class ZiCo(Proxy):
    """ZiCo score (higher is better)."""

    name = "zico"
    version = "1"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        return zico_score(ctx.shared("zico_gradients", lambda: minibatch_gradients(ctx)))
