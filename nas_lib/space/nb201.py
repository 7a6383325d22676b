"""NAS-Bench-201 cell space (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible
Neural Architecture Search", ICLR 2020, arXiv 2001.00326).

A cell is a DAG of 4 nodes; each of its 6 edges carries one of 5 operations, so the full space
has 5**6 = 15,625 cells. The network is the benchmark's: 3x3 conv stem (16 channels), three
stages of 5 cells (16, 32, 64 channels) joined by residual reduction blocks, BN-ReLU, global
average pooling and a linear classifier.

The space can be constrained per edge (a subset of operations for each edge), which is how the
pruning layers express their cuts on this space.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas_lib.space.base import InvalidArchitectureError, SearchSpace

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to_node, from_node) of each edge, in the order of the NB201 string.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)


@dataclass(frozen=True)
class NB201Arch:
    """One NB201 cell: the operation on each of the 6 edges, in NB201 string order."""

    ops: tuple[str, ...]

    def __str__(self) -> str:
        return format_nb201(self.ops)


def format_nb201(ops: Sequence[str]) -> str:
    """Formats edge operations as an NB201 string, e.g. ``|nor_conv_3x3~0|+|...|``."""
    groups, k = [], 0
    for node in (1, 2, 3):
        parts = []
        for src in range(node):
            parts.append(f"{ops[k]}~{src}")
            k += 1
        groups.append("|" + "|".join(parts) + "|")
    return "+".join(groups)


def parse_nb201(text: str) -> tuple[str, ...]:
    """Parses an NB201 string into the 6 edge operations; raises InvalidArchitectureError."""
    groups = text.strip().split("+")
    if len(groups) != 3:
        raise InvalidArchitectureError("cell", f"expected 3 '+'-separated node groups, got {len(groups)}")
    ops: list[str] = []
    for node, group in enumerate(groups, start=1):
        parts = [p for p in group.split("|") if p]
        if len(parts) != node:
            raise InvalidArchitectureError(f"node {node}", f"expected {node} incoming edges, got {len(parts)}")
        for src, part in enumerate(parts):
            op, sep, idx = part.partition("~")
            if sep != "~" or idx != str(src):
                raise InvalidArchitectureError(f"edge {src}->{node}", f"malformed token {part!r}")
            if op not in OPS:
                raise InvalidArchitectureError(f"edge {src}->{node}", f"unknown operation {op!r}")
            ops.append(op)
    return tuple(ops)


class NB201Space(SearchSpace):
    """The NB201 cell space, optionally restricted to a subset of operations on each edge.

    Args:
        edge_ops: for each of the 6 edges, the allowed operations (default: all 5).
    """

    name = "nb201"

    def __init__(self, edge_ops: Sequence[Sequence[str]] | None = None) -> None:
        if edge_ops is None:
            edge_ops = [OPS] * NUM_EDGES
        if len(edge_ops) != NUM_EDGES:
            raise ValueError(f"edge_ops needs {NUM_EDGES} entries, got {len(edge_ops)}")
        cleaned = []
        for k, allowed in enumerate(edge_ops):
            unknown = [op for op in allowed if op not in OPS]
            if unknown:
                raise ValueError(f"edge {k}: unknown operations {unknown}; known: {list(OPS)}")
            if not allowed:
                raise ValueError(f"edge {k}: the set of allowed operations is empty")
            cleaned.append(tuple(op for op in OPS if op in allowed))  # canonical order
        self.edge_ops: tuple[tuple[str, ...], ...] = tuple(cleaned)

    def restrict(self, edge_ops: Sequence[Sequence[str]]) -> NB201Space:
        """A narrower space: the intersection of this one and `edge_ops`."""
        return NB201Space([tuple(op for op in mine if op in theirs) for mine, theirs in zip(self.edge_ops, edge_ops)])

    def size(self) -> int:
        return int(np.prod([len(a) for a in self.edge_ops], dtype=object))

    def validate(self, spec: NB201Arch) -> None:
        if not isinstance(spec, NB201Arch) or len(spec.ops) != NUM_EDGES:
            raise InvalidArchitectureError("cell", f"expected an NB201Arch with {NUM_EDGES} edges")
        for k, (op, allowed) in enumerate(zip(spec.ops, self.edge_ops)):
            dst, src = EDGES[k]
            if op not in OPS:
                raise InvalidArchitectureError(f"edge {src}->{dst}", f"unknown operation {op!r}")
            if op not in allowed:
                raise InvalidArchitectureError(f"edge {src}->{dst}", f"operation {op!r} is not allowed here (allowed: {', '.join(allowed)})")

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return NB201Arch(tuple(allowed[int(rng.integers(len(allowed)))] for allowed in self.edge_ops))

    def enumerate(self) -> Iterator[NB201Arch]:
        """Every cell of the space (the last edge varies fastest; NB201's own index order differs)."""
        for combo in itertools.product(*self.edge_ops):
            yield NB201Arch(combo)

    def mutate(self, spec: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        editable = [k for k, allowed in enumerate(self.edge_ops) if len(allowed) > 1]
        if not editable:
            return spec
        k = editable[int(rng.integers(len(editable)))]
        choices = [op for op in self.edge_ops[k] if op != spec.ops[k]]
        ops = list(spec.ops)
        ops[k] = choices[int(rng.integers(len(choices)))]
        return NB201Arch(tuple(ops))

    def crossover(self, a: NB201Arch, b: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        mask = rng.random(NUM_EDGES) < 0.5
        return NB201Arch(tuple(x if m else y for x, y, m in zip(a.ops, b.ops, mask)))

    def to_string(self, spec: NB201Arch) -> str:
        return format_nb201(spec.ops)

    def from_string(self, text: str) -> NB201Arch:
        return NB201Arch(parse_nb201(text))

    def encode(self, spec: NB201Arch) -> tuple[int, ...]:
        return tuple(OPS.index(op) for op in spec.ops)

    def decode(self, code: Sequence[int]) -> NB201Arch:
        if len(code) != NUM_EDGES:
            raise InvalidArchitectureError("code", f"expected {NUM_EDGES} digits, got {len(code)}")
        for k, digit in enumerate(code):
            if not 0 <= int(digit) < len(OPS):
                dst, src = EDGES[k]
                raise InvalidArchitectureError(f"edge {src}->{dst}", f"digit {digit} is outside 0..{len(OPS) - 1}")
        spec = NB201Arch(tuple(OPS[int(d)] for d in code))
        self.validate(spec)
        return spec

    def code_cardinalities(self) -> tuple[int, ...]:
        return (len(OPS),) * NUM_EDGES

    def project(self, code: Sequence[int], rng: np.random.Generator) -> NB201Arch:
        ops = []
        for digit, allowed in zip(code, self.edge_ops):
            op = OPS[int(digit) % len(OPS)]
            ops.append(op if op in allowed else allowed[int(rng.integers(len(allowed)))])
        return NB201Arch(tuple(ops))

    def build_model(self, spec: NB201Arch, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
        self.validate(spec)
        return NB201Network(spec.ops, in_channels=input_shape[0], num_classes=num_classes)

    def state_key(self) -> str:
        return json.dumps(self.edge_ops)

    def score_key(self, proxy: str, spec: NB201Arch) -> Hashable:
        """Parameter counts depend only on how many 1x1 and 3x3 convolutions a cell has (all edges
        of a cell see the same width), so cells with the same counts share the ``params`` score."""
        if proxy == "params":
            return ("convs", spec.ops.count("nor_conv_1x1"), spec.ops.count("nor_conv_3x3"))
        return spec

    def describe(self) -> str:
        lines = [f"nb201: {self.size():,} cells (log10 {self.log10_size():.3f})"]
        for (dst, src), allowed in zip(EDGES, self.edge_ops):
            lines.append(f"  edge {src}->{dst}: {', '.join(allowed)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The benchmark's network.


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(op: str, channels: int, affine: bool = True) -> nn.Module:
    """One NB201 operation; `affine=False` gives its convolutions DARTS' search-time BN."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, affine)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, affine)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 operation {op!r}; known: {', '.join(OPS)}")


class NB201Cell(nn.Module):
    """Node j = sum over i < j of op_(i->j)(node i); the output is node 3."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)
        self.ops = tuple(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for node in (1, 2, 3):
            total = None
            for src in range(node):
                if self.ops[k] != "none":  # a zero edge adds nothing; skipping it saves work
                    out = self.edges[k](nodes[src])
                    total = out if total is None else total + out
                k += 1
            nodes.append(total if total is not None else x.mul(0.0))
        return nodes[3]


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block with stride 2 that joins two stages."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    """The NB201 macro skeleton around a cell (C=16, N=5)."""

    def __init__(self, ops: Sequence[str], in_channels: int = 3, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, c * 2))
                c *= 2
            layers.extend(NB201Cell(ops, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features that enter the classifier."""
        x = self.lastact(self.cells(self.stem(x)))
        return self.pool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))
