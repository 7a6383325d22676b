"""FLOP counting (`nas_lib.space.stats`) against hand counts of one ViT and one Mamba block.

Counting rule: a multiply-accumulate is 2 FLOPs; only matrix products, convolutions and
attention count. A training step's backward counts 2x the forward of each matrix product (the
gradients of both operands, 1x where one operand needs no gradient), and 2.5x the forward of
attention (the flash kernel recomputes QK^T).
"""

from __future__ import annotations

import torch
from torch import nn

from nas_lib.blocks.mamba import MambaBlock
from nas_lib.blocks.vit import WindowAttentionBlock, balanced_window
from nas_lib.space.stats import count_flops, count_training_flops


def linear(tokens: int, n_in: int, n_out: int) -> int:
    return 2 * tokens * n_in * n_out


def test_vit_block_counts_attention_on_cpu() -> None:
    dim, heads, mlp, qkv, side = 32, 4, 4, 64, 8
    block = WindowAttentionBlock(dim, heads, mlp, qkv, window_size=7)
    ws = balanced_window(7, side, side)
    assert ws == 4  # 2x2 windows of 4x4 tokens, no padding
    tokens, windows, head_dim = side * side, (side // ws) ** 2, qkv // heads
    dense = linear(tokens, dim, 3 * qkv) + linear(tokens, qkv, dim) + linear(tokens, dim, mlp * dim) + linear(tokens, mlp * dim, dim)
    attention = windows * heads * 2 * (2 * ws**2 * ws**2 * head_dim)  # QK^T and AV per window and head
    assert count_flops(block, (dim, side, side)) == dense + attention
    # every linear's input carries a gradient (LayerNorm has weights): 3x; attention 1 + 2.5
    assert count_training_flops(block, (dim, side, side), batch_size=2) == 2 * (3 * dense + 3.5 * attention)


def test_mamba_block_counts_projections_conv_and_scan() -> None:
    dim, d_state, expand, d_conv, side = 32, 8, 2, 4, 8
    block = MambaBlock(dim, d_state, expand, d_conv)
    inner, heads, head_dim, chunk = expand * dim, block.heads, block.head_dim, 16
    length = side * side
    chunks = length // chunk
    assert (heads, head_dim) == (4, 16) and length % chunk == 0
    projections = linear(length, dim, 2 * inner) + linear(length, inner, heads + 2 * d_state) + linear(length, inner, dim)
    conv = 2 * inner * (length + d_conv - 1) * d_conv  # depthwise, output padded by d_conv - 1
    scan = (
        chunks * 2 * chunk * d_state * chunk  # C_l . B_s within a chunk
        + chunks * heads * 2 * chunk * chunk * head_dim  # scores @ x
        + chunks * 2 * heads * head_dim * chunk * d_state  # state each chunk leaves
        + heads * 2 * (chunks + 1) * (chunks + 1) * head_dim * d_state  # carried across chunks
        + chunks * 2 * chunk * d_state * heads * head_dim  # C_l . carried state
    )
    assert count_flops(block, (dim, side, side)) == projections + conv + scan
    # the grouped conv's weight gradient costs its forward, not groups times more
    assert count_training_flops(block, (dim, side, side), batch_size=2) == 2 * 3 * (projections + conv + scan)


def test_grouped_conv_weight_gradient_costs_its_forward() -> None:
    conv = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
    forward = count_flops(conv, (16, 8, 8))
    assert forward == 2 * 16 * 9 * 64
    assert count_training_flops(conv, (16, 8, 8), batch_size=3) == 3 * 2 * forward  # the image needs no gradient


def test_training_count_leaves_the_model_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_training_flops(model, (3, 8, 8), batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
