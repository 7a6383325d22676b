"""Selective state-space block in pure PyTorch, so it runs on CPU.

Block structure of Mamba (Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State
Spaces", 2023, arXiv 2312.00752): in-projection to (x, z), depthwise causal conv over the
sequence, input-dependent step Δ and matrices B, C, a selective scan, output gated by SiLU(z),
out-projection. The state transition is Mamba-2's (Dao & Gu, "Transformers are SSMs", 2024,
arXiv 2405.21060): one scalar decay per head, which admits an exact chunked scan made of
matrix products (no Python loop over tokens; one loop-free pass over chunks).

When the optional `mamba-ssm` package is installed and the tensor is on a GPU, its fused
Triton kernel `mamba_chunk_scan_combined` runs the scan instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas_lib.blocks.base import BLOCKS, BlockFamily, BuiltBlock, Params, TokenBlock

try:  # optional CUDA kernels
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined as _fused_scan
except Exception:  # noqa: BLE001 - any import failure means "not available"
    _fused_scan = None

HEAD_DIM = 16
CHUNK = 16  # chunk length of the scan: its (L x L) decay matrices stay small on CPU


def segment_sums(a: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = a[..., j+1] + ... + a[..., i] for i >= j, and -inf above the diagonal."""
    t = a.shape[-1]
    cum = torch.cumsum(a, dim=-1)
    seg = cum[..., :, None] - cum[..., None, :]
    keep = torch.ones(t, t, dtype=torch.bool, device=a.device).tril()
    return seg.masked_fill(~keep, float("-inf"))


def chunked_scan(x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """Exact selective scan h_t = exp(dt_t a) h_(t-1) + dt_t B_t x_t, y_t = C_t h_t.

    Args:
        x: (batch, length, heads, head_dim) inputs.
        dt: (batch, length, heads) positive steps.
        a: (heads,) negative decay rates.
        b, c: (batch, length, state) input and output matrices (shared across heads).
    Returns:
        (batch, length, heads, head_dim) outputs.
    """
    bsz, length, heads, hdim = x.shape
    pad = (-length) % chunk
    if pad:  # zero steps at the end change nothing before them: the scan is causal
        x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        b, c = F.pad(b, (0, 0, 0, pad)), F.pad(c, (0, 0, 0, pad))
    n_chunks = x.shape[1] // chunk
    xs = (x * dt.unsqueeze(-1)).view(bsz, n_chunks, chunk, heads, hdim)
    log_decay = (dt * a).view(bsz, n_chunks, chunk, heads).permute(0, 3, 1, 2)  # (b, h, c, l)
    bs = b.view(bsz, n_chunks, chunk, -1)
    cs = c.view(bsz, n_chunks, chunk, -1)
    cum = torch.cumsum(log_decay, dim=-1)

    # Within each chunk: y_t = sum_{s<=t} (C_t . B_s) exp(cum_t - cum_s) x_s dt_s.
    within = torch.exp(segment_sums(log_decay))  # (b, h, c, l, l)
    scores = torch.einsum("bcln,bcsn->bcls", cs, bs).unsqueeze(1) * within
    y = torch.einsum("bhcls,bcshp->bclhp", scores, xs)

    # State each chunk leaves behind, then carried across chunks.
    to_end = torch.exp(cum[..., -1:] - cum)  # (b, h, c, l)
    states = torch.einsum("bcln,bhcl,bclhp->bchpn", bs, to_end, xs)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    chunk_decay = F.pad(cum[..., -1], (1, 0))  # (b, h, c+1)
    carried = torch.einsum("bhzc,bchpn->bzhpn", torch.exp(segment_sums(chunk_decay)), states)[:, :-1]
    y = y + torch.einsum("bcln,bchpn,bhcl->bclhp", cs, carried, torch.exp(cum))
    return y.reshape(bsz, n_chunks * chunk, heads, hdim)[:, :length]


class MambaBlock(TokenBlock):
    """LN -> selective SSM mixer. The residual, if any, is the architecture's connection."""

    def __init__(self, dim: int, d_state: int, expand: int, d_conv: int) -> None:
        super().__init__()
        inner = expand * dim
        self.inner = inner
        self.head_dim = HEAD_DIM if inner % HEAD_DIM == 0 else inner
        self.heads = inner // self.head_dim
        self.d_state = d_state
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.heads + 2 * d_state, bias=False)
        # Δ initialised log-uniformly in [1e-3, 1e-1] through softplus's inverse, as in Mamba.
        dt = torch.exp(torch.rand(self.heads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.a_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, self.heads)))
        self.skip = nn.Parameter(torch.ones(self.heads))
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def forward_tokens(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        bsz, length, _ = tokens.shape
        x, z = self.in_proj(self.norm(tokens)).chunk(2, dim=-1)
        x = F.silu(self.conv(x.transpose(1, 2))[..., :length].transpose(1, 2))
        dt, b, c = self.x_proj(x).split([self.heads, self.d_state, self.d_state], dim=-1)
        y = selective_scan(x.view(bsz, length, self.heads, self.head_dim), dt, self.dt_bias, self.a_log, self.skip, b, c)
        return self.out_proj(y.reshape(bsz, length, self.inner) * F.silu(z))


def selective_scan(
    xh: torch.Tensor, dt: torch.Tensor, dt_bias: torch.Tensor, a_log: torch.Tensor, skip: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """The SSM of a Mamba block on (batch, length, heads, head_dim) inputs, with raw steps `dt`
    (softplus(dt + dt_bias) is the step), decay rates -exp(a_log) and the skip term; the fused
    kernel when it is installed and the tensors are on a GPU."""
    a = -torch.exp(a_log.float())
    if _fused_scan is not None and xh.is_cuda:
        return _fused_scan(xh, dt, a, b.unsqueeze(2), c.unsqueeze(2), CHUNK, D=skip, dt_bias=dt_bias, dt_softplus=True)
    return chunked_scan(xh, F.softplus(dt + dt_bias), a, b, c) + xh * skip.view(1, 1, -1, 1)


def make_mamba(in_channels: int, hw: tuple[int, int], p: Params) -> BuiltBlock:
    return BuiltBlock(MambaBlock(in_channels, p["d_state"], p["expand"], p["d_conv"]), in_channels, hw)


BLOCKS.add(
    "mamba",
    BlockFamily(
        name="mamba",
        digit=3,  # the type digit in architecture codes: never change it
        fields=(("d_state", (8, 16)), ("expand", (1, 2)), ("d_conv", (2, 4))),
        make=make_mamba,
    ),
)
