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
        digit: the family's value in the type position of every architecture code (0 means "no
            block"). It is part of the encoding, so trained tables and runs depend on it: choose
            the next free one for a new family and never change it.
        fields: ordered (field name, allowed values) pairs: the full space of this family.
        make: builds the block from (in_channels, (H, W), params).
        rule: returns why a combination of values is invalid, or None when it is valid.
        post_activation: apply ReLU after the block's connection is combined (conv families).
    """

    name: str
    digit: int
    fields: tuple[tuple[str, tuple[int, ...]], ...]
    make: Callable[[int, tuple[int, int], Params], BuiltBlock]
    rule: Callable[[Params], str | None] = field(default=lambda params: None)
    post_activation: bool = False

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    def choices(self, name: str) -> tuple[int, ...]:
        return dict(self.fields)[name]


class BlockRegistry(Registry[BlockFamily]):
    """The block families by name, each also known by the code digit it declares.

    Registration refuses a family filed under another name than its own, a digit below 1 and a
    digit another family already holds, so a code means the same family whatever the import
    order.
    """

    def __init__(self) -> None:
        super().__init__("block family")
        self._by_digit: dict[int, str] = {}

    def add(self, name: str, obj: BlockFamily) -> None:
        """Registers family `obj` under its own `name` and its declared digit (ValueError on a clash)."""
        if obj.name != name:
            raise ValueError(f"block family {obj.name!r} cannot be registered under the name {name!r}")
        if isinstance(obj.digit, bool) or not isinstance(obj.digit, int) or obj.digit < 1:
            raise ValueError(f"block family {name!r}: code digit must be an integer >= 1 (0 means no block), got {obj.digit!r}")
        if obj.digit in self._by_digit:
            raise ValueError(f"block family {name!r}: code digit {obj.digit} is already taken by {self._by_digit[obj.digit]!r}")
        super().add(name, obj)
        self._by_digit[obj.digit] = name

    def by_digit(self, digit: int) -> BlockFamily:
        """The family whose code digit is `digit`; KeyError listing the digits in use otherwise."""
        if digit not in self._by_digit:
            known = ", ".join(f"{d} {n}" for d, n in sorted(self._by_digit.items())) or "(none)"
            raise KeyError(f"no block family has code digit {digit}; in use: {known}")
        return self.get(self._by_digit[digit])

    def names_by_digit(self) -> tuple[str, ...]:
        """The family names ordered by code digit (the space's canonical type order)."""
        return tuple(name for _, name in sorted(self._by_digit.items()))

    def digits(self) -> tuple[int, ...]:
        """The code digits in use, ascending."""
        return tuple(sorted(self._by_digit))

    def max_digit(self) -> int:
        """The largest code digit in use (0 when no family is registered)."""
        return max(self._by_digit, default=0)


BLOCKS = BlockRegistry()


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
