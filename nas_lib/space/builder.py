"""Turns a `HybridArch` into an `nn.Module`.

Every block maps a feature map (B, C, H, W) to a feature map; token blocks (ViT, Mamba) flatten
and fold internally (`TokenBlock`), so any order of block types is valid. The builder tracks
channels and spatial size statically and wraps each block in its connection:

- sequential: y = f(x)
- residual:   y = f(x) + s(x), s = identity, or 1x1 conv + BN when channels or size change
- parallel:   y = f(x) + g(x), g = depthwise 3x3 conv + BN + 1x1 conv + BN. The second branch is a
  cheap local-context path (about 9C + C*C' weights): it gives attention and SSM blocks the
  convolutional inductive bias that hybrid designs add back, at a fraction of f's cost.
"""

from __future__ import annotations

import torch
from torch import nn

from nas_lib.blocks import BLOCKS
from nas_lib.space.hybrid import HybridArch

STEM_CHANNELS = 32
PATCHIFY_ABOVE = 64  # inputs larger than this get a stride-4 patchify stem instead of a 3x3 conv


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if c_in == c_out and stride == 1:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


def _local_branch(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
    )


class ConnectedBlock(nn.Module):
    """A block f with its connection to the previous one."""

    def __init__(self, body: nn.Module, connection: str, c_in: int, c_out: int, stride: int, post_activation: bool) -> None:
        super().__init__()
        self.body = body
        self.connection = connection
        if connection == "residual":
            self.side: nn.Module | None = _shortcut(c_in, c_out, stride)
        elif connection == "parallel":
            self.side = _local_branch(c_in, c_out, stride)
        else:
            self.side = None
        self.act = nn.ReLU(inplace=True) if post_activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.side is not None:
            y = y + self.side(x)
        return self.act(y)


class HybridNetwork(nn.Module):
    """Stem -> connected blocks -> BN -> global average pool -> linear classifier."""

    def __init__(self, spec: HybridArch, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__()
        c_in, h, w = input_shape
        if min(h, w) > PATCHIFY_ABOVE:
            self.stem = nn.Sequential(nn.Conv2d(c_in, STEM_CHANNELS, 4, stride=4, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True))
            h, w = h // 4, w // 4
        else:
            self.stem = nn.Sequential(nn.Conv2d(c_in, STEM_CHANNELS, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True))
        channels = STEM_CHANNELS
        blocks = []
        for block in spec.blocks:
            fam = BLOCKS.get(block.type)
            built = fam.make(channels, (h, w), block.p)
            stride = -(-h // built.out_hw[0]) if built.out_hw[0] else 1  # ceil: a stride-2 block maps 7 -> 4
            blocks.append(ConnectedBlock(built.module, block.connection, channels, built.out_channels, max(1, stride), fam.post_activation))
            channels, (h, w) = built.out_channels, built.out_hw
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.feature_channels = channels
        self.feature_hw = (h, w)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features that enter the classifier."""
        return self.pool(self.norm(self.blocks(self.stem(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))
