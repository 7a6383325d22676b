"""A weight-sharing supernet of the hybrid CNN / ViT / Mamba space: the widest block of every
type at every position, subnets chosen by path and width.

Every position up to the space's maximum depth holds one widest block per type (its width fields
at the largest value the space allows), one residual shortcut and one parallel local branch. A
subnet is any `HybridArch` of the space: depth d runs positions 0..d-1, each with its block's
type and connection (the path), and every weight is the leading slice of the widest one (the
width), as in once-for-all and BigNAS (Cai et al., ICLR 2020, arXiv 1908.09791; Yu et al., ECCV
2020, arXiv 2003.11142):

- a conv or linear layer uses its first ``out`` rows and first ``in`` columns;
- a grouped 3x3 conv of cardinality g uses the g diagonal blocks of the widest dense kernel;
- a Mamba block's causal conv uses the last ``d_conv`` taps, its heads the first ones;
- batch and layer norms use their first channels (batch norms are recalibrated per subnet before
  scoring, `nas_lib.oneshot.scoring`).

The structure of a subnet is exactly `nas_lib.space.builder.HybridNetwork`'s for the same
architecture (stem, blocks with their connections and post-activations, norm, pooling,
classifier), so inherited-weight accuracy scores the network the pipeline would train.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas_lib.blocks import BLOCKS
from nas_lib.blocks.cnn import EXPANSION, effective_stride
from nas_lib.blocks.mamba import HEAD_DIM, selective_scan
from nas_lib.blocks.vit import multi_head_attention, windowed
from nas_lib.space.builder import PATCHIFY_ABOVE, STEM_CHANNELS
from nas_lib.space.hybrid import BlockSpec, HybridArch, HybridSpace

# The fields that set a block's width (sliced); the others (stride, cardinality, heads, window,
# d_conv) change how the widest weights are used, not how many of them.
WIDTH_FIELDS: Mapping[str, tuple[str, ...]] = {"cnn": ("planes", "base_width"), "vit": ("qkv_dim", "mlp_ratio"), "mamba": ("expand", "d_state")}


@dataclass(frozen=True)
class Bounds:
    """The largest value of every field of every type the space allows, and its depth."""

    max_depth: int
    largest: Mapping[str, Mapping[str, int]]

    @classmethod
    def of(cls, space: HybridSpace) -> Bounds:
        largest = {t: {name: max(space.constraints.values(t, name)) for name in BLOCKS.get(t).field_names} for t in space.types if space.combos[t]}
        return cls(space.constraints.max_depth, largest)

    @property
    def channels(self) -> int:
        """The widest feature map between blocks: the stem's, or the widest CNN block's output."""
        cnn = self.largest.get("cnn")
        return max(STEM_CHANNELS, EXPANSION * cnn["planes"]) if cnn else STEM_CHANNELS


def _kaiming(*shape: int) -> nn.Parameter:
    w = torch.empty(*shape)
    nn.init.kaiming_uniform_(w, a=5**0.5)  # nn.Conv2d's and nn.Linear's default
    return nn.Parameter(w)


class SlicedBatchNorm(nn.BatchNorm2d):
    """A BatchNorm2d that normalises the first C channels of its input with the first C entries
    of its statistics and affine parameters (momentum None: a cumulative average, as in BN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        assert self.running_mean is not None and self.running_var is not None and self.num_batches_tracked is not None
        momentum = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c], self.training, momentum, self.eps)


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    c = x.shape[-1]
    return F.layer_norm(x, (c,), norm.weight[:c], norm.bias[:c], norm.eps)


class SlicedLinear(nn.Linear):
    """A Linear whose subnets use its first `out` rows and the first columns their input has."""

    def run(self, x: torch.Tensor, out: int) -> torch.Tensor:
        return F.linear(x, self.weight[:out, : x.shape[-1]], None if self.bias is None else self.bias[:out])


class CNNBlocks(nn.Module):
    """The widest ResNeXt bottleneck (`nas_lib.blocks.cnn`) of one position."""

    def __init__(self, channels: int, largest: Mapping[str, int]) -> None:
        super().__init__()
        width = max(1, largest["planes"] * largest["base_width"] // 64) * largest["cardinality"]
        out = EXPANSION * largest["planes"]
        self.reduce, self.bn1 = _kaiming(width, channels, 1, 1), SlicedBatchNorm(width)
        self.grouped, self.bn2 = _kaiming(width, width, 3, 3), SlicedBatchNorm(width)
        self.expand, self.bn3 = _kaiming(out, width, 1, 1), SlicedBatchNorm(out)

    def forward(self, x: torch.Tensor, p: Mapping[str, int]) -> torch.Tensor:
        stride = effective_stride(p["stride"], (x.shape[2], x.shape[3]))
        groups = p["cardinality"]
        width = max(1, p["planes"] * p["base_width"] // 64) * groups
        per = width // groups
        diagonal = torch.cat([self.grouped[g * per : (g + 1) * per, g * per : (g + 1) * per] for g in range(groups)])
        y = F.relu(self.bn1(F.conv2d(x, self.reduce[:width, : x.shape[1]])))
        y = F.relu(self.bn2(F.conv2d(y, diagonal, stride=stride, padding=1, groups=groups)))
        return self.bn3(F.conv2d(y, self.expand[: EXPANSION * p["planes"], :width]))


class ViTBlocks(nn.Module):
    """The widest windowed-attention block (`nas_lib.blocks.vit`) of one position."""

    def __init__(self, channels: int, largest: Mapping[str, int]) -> None:
        super().__init__()
        qkv, hidden = largest["qkv_dim"], largest["mlp_ratio"] * channels
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.q, self.k, self.v = SlicedLinear(channels, qkv), SlicedLinear(channels, qkv), SlicedLinear(channels, qkv)
        self.proj = SlicedLinear(qkv, channels)
        self.fc1, self.fc2 = SlicedLinear(channels, hidden), SlicedLinear(hidden, channels)

    def forward(self, x: torch.Tensor, p: Mapping[str, int]) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        qkv_dim = p["qkv_dim"]

        def qkv(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.q.run(t, qkv_dim), self.k.run(t, qkv_dim), self.v.run(t, qkv_dim)], dim=-1)

        def mix(windows: torch.Tensor) -> torch.Tensor:
            return multi_head_attention(windows, qkv, lambda t: self.proj.run(t, c), p["num_heads"], qkv_dim)

        tokens = tokens + windowed(_layer_norm(self.norm1, tokens), h, w, p["window_size"], mix)
        tokens = tokens + self.fc2.run(F.gelu(self.fc1.run(_layer_norm(self.norm2, tokens), p["mlp_ratio"] * c)), c)
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class MambaBlocks(nn.Module):
    """The widest selective state-space block (`nas_lib.blocks.mamba`) of one position."""

    def __init__(self, channels: int, largest: Mapping[str, int]) -> None:
        super().__init__()
        inner, state, taps = largest["expand"] * channels, largest["d_state"], largest["d_conv"]
        heads = inner // HEAD_DIM
        self.norm = nn.LayerNorm(channels)
        self.in_x, self.in_z = SlicedLinear(channels, inner, bias=False), SlicedLinear(channels, inner, bias=False)
        self.conv = nn.Conv1d(inner, inner, taps, groups=inner)
        self.to_dt, self.to_b, self.to_c = (SlicedLinear(inner, n, bias=False) for n in (heads, state, state))
        dt = torch.exp(torch.rand(heads) * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3))) + torch.log(torch.tensor(1e-3)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.a_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, heads)))
        self.skip = nn.Parameter(torch.ones(heads))
        self.out = SlicedLinear(inner, channels, bias=False)

    def forward(self, x: torch.Tensor, p: Mapping[str, int]) -> torch.Tensor:
        b, c, h, w = x.shape
        length, inner, taps = h * w, p["expand"] * c, p["d_conv"]
        head_dim = HEAD_DIM if inner % HEAD_DIM == 0 else inner
        heads = inner // head_dim
        tokens = _layer_norm(self.norm, x.flatten(2).transpose(1, 2))
        u, z = self.in_x.run(tokens, inner), self.in_z.run(tokens, inner)
        kernel = self.conv.weight[:inner, :, self.conv.weight.shape[-1] - taps :]
        u = F.conv1d(u.transpose(1, 2), kernel, self.conv.bias[:inner], padding=taps - 1, groups=inner)  # type: ignore[index]
        u = F.silu(u[..., :length].transpose(1, 2))
        dt, bm, cm = self.to_dt.run(u, heads), self.to_b.run(u, p["d_state"]), self.to_c.run(u, p["d_state"])
        y = selective_scan(u.view(b, length, heads, head_dim), dt, self.dt_bias[:heads], self.a_log[:heads], self.skip[:heads], bm, cm)
        y = self.out.run(y.reshape(b, length, inner) * F.silu(z), c)
        return y.transpose(1, 2).reshape(b, c, h, w)


class Position(nn.Module):
    """One block position: the widest block of every type and both connection side paths."""

    def __init__(self, channels: int, largest: Mapping[str, Mapping[str, int]]) -> None:
        super().__init__()
        kinds = {"cnn": CNNBlocks, "vit": ViTBlocks, "mamba": MambaBlocks}
        self.blocks = nn.ModuleDict({t: kinds[t](channels, fields) for t, fields in largest.items()})
        self.shortcut, self.shortcut_bn = _kaiming(channels, channels, 1, 1), SlicedBatchNorm(channels)
        self.depthwise, self.local_bn1 = _kaiming(channels, 1, 3, 3), SlicedBatchNorm(channels)
        self.pointwise, self.local_bn2 = _kaiming(channels, channels, 1, 1), SlicedBatchNorm(channels)

    def forward(self, x: torch.Tensor, block: BlockSpec) -> torch.Tensor:
        y = self.blocks[block.type](x, block.p)
        c_in, c_out = x.shape[1], y.shape[1]
        stride = -(-x.shape[2] // y.shape[2])
        if block.connection == "residual":
            if c_in == c_out and stride == 1:
                y = y + x
            else:
                y = y + self.shortcut_bn(F.conv2d(x, self.shortcut[:c_out, :c_in], stride=stride))
        elif block.connection == "parallel":
            local = self.local_bn1(F.conv2d(x, self.depthwise[:c_in], stride=stride, padding=1, groups=c_in))
            y = y + self.local_bn2(F.conv2d(local, self.pointwise[:c_out, :c_in]))
        return F.relu(y) if BLOCKS.get(block.type).post_activation else y


class HybridSupernet(nn.Module):
    """The supernet of a hybrid space; ``model(x, path=arch)`` runs the subnet `arch`.

    Args:
        space: the (possibly pruned) hybrid space; its bounds fix the widest blocks.
        input_shape, num_classes: of the data.
    """

    def __init__(self, space: HybridSpace, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__()
        self.space = space
        self.bounds = Bounds.of(space)
        c_in, h, w = input_shape
        patch = min(h, w) > PATCHIFY_ABOVE
        stem = nn.Conv2d(c_in, STEM_CHANNELS, 4, stride=4, bias=False) if patch else nn.Conv2d(c_in, STEM_CHANNELS, 3, padding=1, bias=False)
        self.stem = nn.Sequential(stem, nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True))
        channels = self.bounds.channels
        self.positions = nn.ModuleList(Position(channels, self.bounds.largest) for _ in range(self.bounds.max_depth))
        self.norm = SlicedBatchNorm(channels)
        self.classifier = SlicedLinear(channels, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, path: HybridArch, gates: tuple[Sequence[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The logits of the subnet `path`. `gates` (one scalar per block, one for the pooled
        features) multiply those outputs: straight-through gates of value 1 that carry a
        gradient to the architecture parameters of a sampled relaxation (`nas_lib.oneshot.hybrid`)."""
        if path.depth > len(self.positions):
            raise ValueError(f"a {path.depth}-block subnet does not fit a supernet of {len(self.positions)} positions")
        x = self.stem(x)
        for k, (position, block) in enumerate(zip(self.positions, path.blocks)):
            x = position(x, block)
            if gates is not None:
                x = x * gates[0][k]
        features = self.norm(x).mean((2, 3))
        if gates is not None:
            features = features * gates[1]
        return self.classifier.run(features, self.num_classes)


def extreme(space: HybridSpace, arch: HybridArch, largest: bool) -> HybridArch:
    """`arch` with every block's width fields at their largest (or smallest) value the space
    allows for its other fields: the sandwich rule's extremes of a sampled path."""
    blocks = []
    for block in arch.blocks:
        widths = WIDTH_FIELDS.get(block.type, ())
        fixed = {k: v for k, v in block.params if k not in widths}
        same = [combo for combo in space.combos[block.type] if all(dict(combo)[k] == v for k, v in fixed.items())]
        ordered = sorted(same, key=lambda combo, w=widths: tuple(dict(combo)[k] for k in w))  # type: ignore[misc]
        pick = (ordered[-1] if largest else ordered[0]) if ordered else block.params
        blocks.append(BlockSpec(block.type, tuple(pick), block.connection))
    return HybridArch(tuple(blocks))
