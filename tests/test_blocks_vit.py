"""The windowed attention of the ViT block against a plain per-window, per-head reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nas_lib.blocks.vit import WindowAttentionBlock, balanced_window


def reference_attend(block: WindowAttentionBlock, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Zero-pad the (h, w) token map to whole windows, attend inside each window head by head, crop."""
    b, _, c = x.shape
    ws = balanced_window(block.window_size, h, w)
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    grid = torch.zeros(b, hp, wp, c)
    grid[:, :h, :w] = x.view(b, h, w, c)
    out = torch.zeros(b, hp, wp, c)
    head_dim = block.qkv_dim // block.num_heads
    for i in range(0, hp, ws):
        for j in range(0, wp, ws):
            q, k, v = block.qkv(grid[:, i : i + ws, j : j + ws].reshape(b, ws * ws, c)).split(block.qkv_dim, dim=-1)
            heads = []
            for n in range(block.num_heads):
                part = slice(n * head_dim, (n + 1) * head_dim)
                weights = F.softmax(q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(head_dim), dim=-1)
                heads.append(weights @ v[..., part])
            out[:, i : i + ws, j : j + ws] = block.proj(torch.cat(heads, dim=-1)).view(b, ws, ws, c)
    return out[:, :h, :w].reshape(b, h * w, c)


@pytest.mark.parametrize(("side", "window"), [(8, 7), (7, 4), (6, 14)])  # 2x2 windows; padded 8x8; one window
def test_window_attention_matches_reference(side: int, window: int) -> None:
    torch.manual_seed(0)
    block = WindowAttentionBlock(dim=16, num_heads=4, mlp_ratio=2, qkv_dim=32, window_size=window)
    x = torch.randn(3, side * side, 16, requires_grad=True)
    ours = block.attend(x, side, side)
    grads = torch.autograd.grad(ours.square().sum(), (x, block.qkv.weight))
    ref = reference_attend(block, x, side, side)
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, block.qkv.weight))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
