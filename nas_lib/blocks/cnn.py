"""ResNeXt-style grouped bottleneck (Xie et al., "Aggregated Residual Transformations for Deep
Neural Networks", CVPR 2017, arXiv 1611.05431).

width = floor(planes * base_width / 64) * cardinality; 1x1 reduce -> 3x3 grouped conv (stride)
-> 1x1 expand to planes * EXPANSION. The block's own shortcut is not here: the architecture's
`connection` decides whether the block is sequential, residual or parallel.
"""

from __future__ import annotations

from torch import nn

from nas_lib.blocks.base import BLOCKS, BlockFamily, BuiltBlock, Params

# ResNeXt uses 4; 2 keeps 128-plane blocks at 256 channels, light enough for CPU proxies.
EXPANSION = 2
# Strides are clamped to 1 once the map is smaller than this, so 8x8 inputs stay usable.
MIN_SIDE_FOR_STRIDE = 4


def effective_stride(stride: int, hw: tuple[int, int]) -> int:
    return stride if min(hw) >= MIN_SIDE_FOR_STRIDE else 1


def make_cnn(in_channels: int, hw: tuple[int, int], p: Params) -> BuiltBlock:
    stride = effective_stride(p["stride"], hw)
    width = max(1, p["planes"] * p["base_width"] // 64) * p["cardinality"]
    out = p["planes"] * EXPANSION
    module = nn.Sequential(
        nn.Conv2d(in_channels, width, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=p["cardinality"], bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, out, 1, bias=False),
        nn.BatchNorm2d(out),
    )
    out_hw = ((hw[0] + stride - 1) // stride, (hw[1] + stride - 1) // stride)
    return BuiltBlock(module, out, out_hw)


BLOCKS.add(
    "cnn",
    BlockFamily(
        name="cnn",
        digit=1,  # the type digit in architecture codes: never change it
        fields=(
            ("planes", (16, 32, 64, 128)),
            ("stride", (1, 2)),
            ("cardinality", (1, 2, 4)),
            ("base_width", (32, 64, 128)),
        ),
        make=make_cnn,
        post_activation=True,
    ),
)
