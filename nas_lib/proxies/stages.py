"""Stage features of a network, read during the shared gradient pass (AZ-NAS's four proxies).

Lee and Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
arXiv 2403.19232, read a network as a chain of stages (the stem, then each cell or block) and
score the stage outputs: their channel spectra (expressivity, progressivity) and, per stage,
the Jacobian from its input to its output probed with a random sign gradient (trainability).

A stage is the stem plus each child of the model's cell/block sequence (``cells``, ``blocks``,
``layers`` or ``stages``); a model without one is read through the children of its longest
top-level ``nn.Sequential``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BODY_NAMES = ("cells", "blocks", "layers", "stages")


def feature_stages(model: nn.Module) -> list[nn.Module]:
    """The stages whose outputs AZ-NAS reads, in forward order.

    Raises:
        ValueError: if the model has neither a cell/block sequence nor a top-level Sequential.
    """
    body = next((getattr(model, n) for n in _BODY_NAMES if isinstance(getattr(model, n, None), (nn.Sequential, nn.ModuleList))), None)
    if body is None:
        seqs: list[nn.Sequential] = [m for m in model.children() if isinstance(m, nn.Sequential)]
        if not seqs:
            raise ValueError(f"{type(model).__name__} has no cell/block sequence to read stage features from")
        longest: nn.Sequential = max(seqs, key=len)
        return list(longest)
    stem = getattr(model, "stem", None)
    return ([stem] if isinstance(stem, nn.Module) else []) + list(body)


class StageCapture:
    """Forward hooks that keep each stage's output and count Conv2d/Linear multiply-adds.

    Args:
        model: the network about to run a forward.
        features: keep the stage outputs (with their graph).
        macs: count multiply-adds per image from the layers' output shapes.
    """

    def __init__(self, model: nn.Module, features: bool, macs: bool) -> None:
        self.features: list[torch.Tensor] = []
        self.macs = 0.0
        self._handles = []
        if features:
            self._handles += [s.register_forward_hook(self._keep) for s in feature_stages(model)]
        if macs:
            layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
            self._handles += [m.register_forward_hook(self._count) for m in layers]

    def _keep(self, _module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() < 2:
            raise ValueError(f"a stage returned {type(out).__name__}, not a (N, C, ...) tensor")
        self.features.append(out)

    def _count(self, module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        per_image = out.numel() / max(out.shape[0], 1)
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            self.macs += per_image * module.in_channels // module.groups * k
        elif isinstance(module, nn.Linear):  # the only other layer type hooked (see __init__)
            self.macs += per_image * module.in_features

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def channel_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N*H*W, C); (N, L, C) -> (N*L, C); (N, C) unchanged."""
    if t.dim() == 4:
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    return t.reshape(-1, t.shape[-1])


def _match_grid(g_in: torch.Tensor, g_out: torch.Tensor) -> torch.Tensor:
    """Folds a finer input-gradient grid onto the output's (pixel unshuffle, as AZ-NAS does for
    strided stages; average pooling where the ratio is not a whole stride)."""
    if g_in.dim() != 4 or g_in.shape[2:] == g_out.shape[2:]:
        return g_in
    (hi, wi), (ho, wo) = g_in.shape[2:], g_out.shape[2:]
    if hi % ho == 0 and wi % wo == 0 and hi // ho == wi // wo:
        return F.pixel_unshuffle(g_in, hi // ho)
    return F.adaptive_avg_pool2d(g_in, (ho, wo))


def kaiming_fan_in_init(model: nn.Module) -> None:
    """AZ-NAS's initialisation: Kaiming normal (fan-in, ReLU gain) for every Conv2d/Linear
    weight, zero biases, unit/zero affine normalisation parameters."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def stage_cross_gradients(features: list[torch.Tensor], seed: int) -> list[torch.Tensor | None]:
    """Per consecutive pair of stages, M = E[g_in g_out^T] over positions (C_in x C_out).

    g_out is a Rademacher (+1/-1) gradient at the later stage's output, drawn from a generator
    seeded with `seed`; g_in = g_out^T d(out)/d(in), one backward through that stage alone.
    A stage that passes its input through unchanged (g_in == g_out) gives None.

    Args:
        features: stage outputs in forward order, with their graph.
        seed: seeds the Rademacher draws.
    """
    gen = torch.Generator(device=features[0].device if features else "cpu").manual_seed(int(seed))
    crosses: list[torch.Tensor | None] = []
    for f_in, f_out in zip(features[:-1], features[1:]):
        g_out = torch.randint(0, 2, f_out.shape, generator=gen, device=f_out.device).to(f_out.dtype).mul_(2).sub_(1)
        (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)  # later stages share the graph
        if g_in is None:  # the output does not depend on the input
            g_in = torch.zeros_like(f_in)
        if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
            crosses.append(None)
            continue
        g_in = _match_grid(g_in, g_out)
        a, b = channel_rows(g_in), channel_rows(g_out)
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"stage gradients cover {a.shape[0]} and {b.shape[0]} positions")
        crosses.append((a.T @ b).double().cpu() / b.shape[0])  # float32 sums of +-1-scaled terms
    return crosses
