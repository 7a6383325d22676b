"""Pre-norm transformer block with windowed multi-head self-attention (ViT: Dosovitskiy et al.,
arXiv 2010.11929; windows as in Swin: Liu et al., arXiv 2103.14030).

x = x + Proj(WindowMSA(LN(x))); x = x + MLP(LN(x)). Attention runs inside non-overlapping
windows (`balanced_window`: the fewest windows of at most window_size per side, as small as that
count allows, the map zero-padded to a multiple)
through `torch.nn.functional.scaled_dot_product_attention`. qkv_dim is the total width of the
queries, keys and values across heads, so qkv_dim % num_heads == 0 is required.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nas_lib.blocks.base import BLOCKS, BlockFamily, BuiltBlock, Params, TokenBlock


class WindowAttentionBlock(TokenBlock):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, qkv_dim: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv_dim = qkv_dim
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * qkv_dim)
        self.proj = nn.Linear(qkv_dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def attend(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return windowed(x, h, w, self.window_size, self.mix)

    def mix(self, windows: torch.Tensor) -> torch.Tensor:
        """Multi-head attention inside each window: (windows, tokens, C) -> the same shape."""
        return multi_head_attention(windows, self.qkv, self.proj, self.num_heads, self.qkv_dim)

    def forward_tokens(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        tokens = tokens + self.attend(self.norm1(tokens), h, w)
        return tokens + self.mlp(self.norm2(tokens))


def windowed(x: torch.Tensor, h: int, w: int, window_size: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Applies `fn` to each non-overlapping window of the token map: (B, H*W, C) in raster order
    is cut into (B * windows, ws*ws, C) (zero-padded to a multiple of the `balanced_window`
    side), `fn` maps that to the same shape, and the windows are folded back."""
    b, _, c = x.shape
    ws = balanced_window(window_size, h, w)
    pad_h, pad_w = (-h) % ws, (-w) % ws
    grid = x.view(b, h, w, c)
    if pad_h or pad_w:
        grid = F.pad(grid, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    windows = grid.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
    out = fn(windows)
    out = out.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    return out[:, :h, :w].reshape(b, h * w, c)


def multi_head_attention(
    windows: torch.Tensor, qkv: Callable[[torch.Tensor], torch.Tensor], proj: Callable[[torch.Tensor], torch.Tensor], num_heads: int, qkv_dim: int
) -> torch.Tensor:
    """Self-attention over the tokens of each window: `qkv` maps C to 3 * qkv_dim (q, k, v in
    that order), `proj` maps qkv_dim back to C."""
    n, tokens, _ = windows.shape
    head_dim = qkv_dim // num_heads
    # Split q, k, v where the linear left them (dim 2), then view each as (windows, heads, tokens,
    # head_dim): the backward stacks the three gradients straight into the linear's layout. A
    # permute first would make the backward copy the whole qkv gradient once more, and
    # indexing would zero-fill it for each of q, k and v.
    q, k, v = (t.transpose(1, 2) for t in qkv(windows).view(n, tokens, 3, num_heads, head_dim).unbind(2))
    out = F.scaled_dot_product_attention(q, k, v)
    return proj(out.transpose(1, 2).reshape(n, tokens, qkv_dim))


def balanced_window(window_size: int, h: int, w: int) -> int:
    """The side of the windows actually used: as many windows per side as a ``window_size``
    tiling needs, made as small as that count allows. A 16x16 map with window 14 gets 2x2
    windows of 8 instead of 2x2 windows of 14 over a map zero-padded to 28 (75% padding);
    a window never grows past ``window_size``."""
    side = max(h, w)
    count = -(-side // min(window_size, side))
    return -(-side // count)


def qkv_rule(p: Params) -> str | None:
    if p["qkv_dim"] % p["num_heads"]:
        return f"qkv_dim {p['qkv_dim']} is not divisible by num_heads {p['num_heads']}"
    return None


def make_vit(in_channels: int, hw: tuple[int, int], p: Params) -> BuiltBlock:
    block = WindowAttentionBlock(in_channels, p["num_heads"], p["mlp_ratio"], p["qkv_dim"], p["window_size"])
    return BuiltBlock(block, in_channels, hw)


BLOCKS.add(
    "vit",
    BlockFamily(
        name="vit",
        digit=2,  # the type digit in architecture codes: never change it
        fields=(
            ("num_heads", (3, 4, 6, 8)),
            ("mlp_ratio", (4, 6, 8)),
            ("qkv_dim", (192, 256, 384, 512)),
            ("window_size", (7, 14)),
        ),
        make=make_vit,
        rule=qkv_rule,
    ),
)
