"""Zen-score: expected response of the pre-pooling features to a small input perturbation,
corrected by the BatchNorm scales.

Lin, Wang, Sun, Chen, Sun, Qian, Li, Jin, "Zen-NAS: A Zero-Shot NAS for High-Performance Image
Recognition", ICCV 2021, arXiv 2102.01063. With Gaussian N(0, 1) Conv2d/Linear weights
(BN weight 1, bias 0), train mode, Gaussian inputs x and e:
score = log E||f(x) - f(x + 0.01 e)||_1 + sum over BN layers of log sqrt(mean channel variance),
f = the feature map before global pooling. The channel variances are the BN inputs' batch
variances: the BN layers get fresh running statistics and momentum 1 for the call, so after the
first forward their running_var is exactly that (unbiased) batch variance at no extra cost (the
official code reads running_var after the same forward with the default momentum, a moving
average of these); BN layers without running statistics are measured by a hook. A BN layer whose input is
identically zero (on NB201, every edge leaving a node that only `none` edges feed) contributes
nothing to f and is left out of the sum instead of adding log 0; in the official code its
moving average keeps such a term finite (log sqrt 0.9). Data-free; the random inputs and
weights come from the proxy seed. The Gaussian weights and fresh statistics are passed to the
shared network through `torch.func.functional_call`, which leaves its own tensors alone and
saves deep-copying it (~0.04 s, 7% of a forward, on the all-3x3 NB201 cell).
"""

from __future__ import annotations

import math
from typing import TypeGuard

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy

MIXUP_GAMMA = 1e-2  # the paper's perturbation scale


def _pre_pool_module(model: nn.Module) -> nn.Module | None:
    pools = [m for m in model.modules() if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    return pools[-1] if pools else None


def mean_channel_variance(t: torch.Tensor) -> float:
    """Mean over channels of each channel's variance over (batch, positions).

    Computed as (sum of squares / R - sum over channels of mean^2) / C with a float64 norm and a
    matrix-vector product for the channel means: both are fast whatever the memory layout,
    where `var` over dims (0, 2, 3) of a channels-last map is a slow strided reduction.
    """
    channels = t.shape[1]
    rows = t.permute(0, *range(2, t.dim()), 1).reshape(-1, channels)
    count = rows.shape[0]
    means = (torch.ones(1, count, dtype=rows.dtype, device=rows.device) @ rows).double().squeeze(0) / count
    total_sq = float(torch.linalg.vector_norm(rows, dtype=torch.float64)) ** 2
    return max((total_sq / count - float((means**2).sum())) / channels, 0.0)


def _half_log(variance: float) -> float:
    """log sqrt(variance); 0 for a dead (zero-variance) BN input, which carries no signal."""
    return 0.5 * math.log(variance) if variance > 0 else 0.0


def _is_bn(module: nn.Module) -> TypeGuard[_BatchNorm]:
    return isinstance(module, _BatchNorm)


def _gaussian_weights(net: nn.Module, gen: torch.Generator) -> tuple[dict[str, torch.Tensor], list[_BatchNorm]]:
    """Zen's re-initialisation as new tensors for `functional_call` (the shared network keeps
    its own): N(0, 1) Conv2d/Linear weights drawn in module order, BN weight 1 and bias 0,
    fresh running statistics. Each new tensor keeps its original's device and memory layout.
    Also returns the BN layers."""
    weights: dict[str, torch.Tensor] = {}
    bns: list[_BatchNorm] = []
    for name, m in net.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weights[prefix + "weight"] = torch.empty_like(m.weight, requires_grad=False).copy_(torch.randn(m.weight.shape, generator=gen))
        elif _is_bn(m):
            bns.append(m)
            if m.affine:
                weights[prefix + "weight"] = torch.ones_like(m.weight, requires_grad=False)
                weights[prefix + "bias"] = torch.zeros_like(m.bias, requires_grad=False)
            # track_running_stats sets all three buffers, or none of them
            if m.running_mean is not None and m.running_var is not None and m.num_batches_tracked is not None:
                weights[prefix + "running_mean"] = torch.zeros_like(m.running_mean)
                weights[prefix + "running_var"] = torch.ones_like(m.running_var)
                weights[prefix + "num_batches_tracked"] = torch.zeros_like(m.num_batches_tracked)
    return weights, bns


@register_proxy
class Zen(Proxy):
    """Zen-score (higher is better)."""

    name = "zen"
    version = "3"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        net = ctx.model()
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        weights, bns = _gaussian_weights(net, gen)
        n = ctx.batch()[0].shape[0]
        x = torch.randn((n, *ctx.input_shape), generator=gen).to(ctx.device)
        e = torch.randn((n, *ctx.input_shape), generator=gen).to(ctx.device)
        if x.dim() == 4:  # same layout as the (channels-last) network
            x, e = x.contiguous(memory_format=torch.channels_last), e.contiguous(memory_format=torch.channels_last)
        momenta = [m.momentum for m in bns]
        try:
            for m in bns:
                m.momentum = 1.0  # running_var := this forward's batch variance
            first = self._features(net, weights, x, record_bn=True)
            return self._score(net, weights, x, e, first)
        finally:
            for m, momentum in zip(bns, momenta):
                m.momentum = momentum

    def _score(self, net: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor, e: torch.Tensor, first: tuple[torch.Tensor, float]) -> float:
        f1, log_bn = first
        f2, _ = self._features(net, weights, x + MIXUP_GAMMA * e, record_bn=False)
        diff = float((f1 - f2).abs().sum(dim=tuple(range(1, f1.dim()))).mean())
        if not diff > 0:
            raise ValueError("the pre-pooling features do not respond to the input perturbation (no path from the input)")
        return math.log(diff) + log_bn

    @staticmethod
    def _features(net: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor, record_bn: bool) -> tuple[torch.Tensor, float]:
        captured: dict[str, torch.Tensor] = {}
        log_bn = [0.0]

        def on_pool(_m: nn.Module, inputs: tuple) -> None:
            captured["f"] = inputs[0]

        def on_bn(_m: nn.Module, inputs: tuple) -> None:
            log_bn[0] += _half_log(mean_channel_variance(inputs[0]))

        bns = [m for m in net.modules() if _is_bn(m)]
        pool = _pre_pool_module(net)
        handles = [pool.register_forward_pre_hook(on_pool)] if pool is not None else []
        if record_bn:
            handles += [m.register_forward_pre_hook(on_bn) for m in bns if m.running_var is None]
        try:
            with torch.inference_mode():
                out = functional_call(net, weights, (x,))
        finally:
            for h in handles:
                h.remove()
        if record_bn:
            log_bn[0] += sum(
                _half_log(float(weights[f"{name}.running_var"].double().mean()))
                for name, m in net.named_modules()
                if _is_bn(m) and m.running_var is not None
            )
        return captured.get("f", out), log_bn[0]
