"""What a block family is, and the registry that holds them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from nas_lib.registry import Registry

Params = Mapping[str, int]


@dataclass(frozen=True)
class BuiltBlock:
    """A block built for a known input: maps (B, C_in, H, W) to (B, out_channels, *out_hw)."""

    module: nn.Module
    out_channels: int
    out_hw: tuple[int, int]


@dataclass(frozen=True)
class BlockFamily:
    """One kind of block of the hybrid space.

    Attributes:
        name: the `type` of a block spec (``"cnn"``).
        fields: ordered (field name, allowed values) pairs: the full space of this family.
        make: builds the block from (in_channels, (H, W), params).
        rule: returns why a combination of values is invalid, or None when it is valid.
        post_activation: apply ReLU after the block's connection is combined (conv families).
    """

    name: str
    fields: tuple[tuple[str, tuple[int, ...]], ...]
    make: Callable[[int, tuple[int, int], Params], BuiltBlock]
    rule: Callable[[Params], str | None] = field(default=lambda params: None)
    post_activation: bool = False

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    def choices(self, name: str) -> tuple[int, ...]:
        return dict(self.fields)[name]


BLOCKS: Registry[BlockFamily] = Registry("block family")


class TokenBlock(nn.Module):
    """Base for blocks that work on token sequences (B, N, C): the map (B, C, H, W) is flattened
    in raster order on the way in and folded back on the way out, so the builder can place token
    blocks and conv blocks in any order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        out = self.forward_tokens(tokens, h, w)
        return out.transpose(1, 2).reshape(b, out.shape[-1], h, w)

    def forward_tokens(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        raise NotImplementedError
