"""A weight-sharing NB201 supernet: every edge of the cell is a mixed operation over its candidates.

The macro structure is NAS-Bench-201's (Dong & Yang, ICLR 2020, arXiv 2001.00326): a 3x3 stem,
three stages of `cells_per_stage` cells joined by residual reduction blocks, BN-ReLU, global
pooling and a linear classifier; only the width (`channels`) and depth are reduced so one-shot
search runs on a CPU. As in DARTS (Liu et al., ICLR 2019, arXiv 1806.09055) the batch norms
inside the candidate operations have no affine parameters (the mixing weights play that role).

Two forward modes:
- a discrete cell (``path``: the candidate index on each edge), as SPOS trains and every method
  scores subnets;
- a continuous relaxation (``weights``: one vector of op weights per edge), as DARTS and DrNAS
  train.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas_lib.space.nb201 import EDGES, NUM_EDGES, ResidualReduction, make_op

Path = tuple[int, ...]


class MixedOp(nn.Module):
    """The candidates of one edge; runs one of them or their weighted sum."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.names = tuple(ops)
        self.candidates = nn.ModuleList(make_op(op, channels, affine=False) for op in self.names)

    def forward(self, x: torch.Tensor, index: int | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        if index is not None:
            return self.candidates[index](x)
        assert weights is not None
        # 'none' contributes w * 0 = 0: skipping it saves a multiply and keeps its gradient zero
        terms = [w * op(x) for w, op, name in zip(weights, self.candidates, self.names) if name != "none"]
        return torch.stack(terms).sum(0) if terms else x.mul(0.0)


class SearchCell(nn.Module):
    """The NB201 cell DAG with a `MixedOp` on each edge."""

    def __init__(self, edge_ops: Sequence[Sequence[str]], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(ops, channels) for ops in edge_ops)

    def forward(self, x: torch.Tensor, path: Path | None = None, weights: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            incoming = [
                self.edges[k](nodes[src], None if path is None else path[k], None if weights is None else weights[k])
                for k, (dst, src) in enumerate(EDGES)
                if dst == node
            ]
            total = incoming[0]
            for out in incoming[1:]:  # in edge order, like NB201's cell
                total = total + out
            nodes.append(total)
        return nodes[3]


class Supernet(nn.Module):
    """The NB201 network with mixed edges.

    Args:
        edge_ops: the candidate operations of each of the 6 edges (an `NB201Space`'s ``edge_ops``).
        channels: stem width C (NB201: 16); the stages have C, 2C, 4C channels.
        cells_per_stage: N (NB201: 5).
        in_channels, num_classes: of the data.
    """

    def __init__(
        self, edge_ops: Sequence[Sequence[str]], channels: int = 8, cells_per_stage: int = 1, in_channels: int = 3, num_classes: int = 10
    ) -> None:
        super().__init__()
        if len(edge_ops) != NUM_EDGES:
            raise ValueError(f"edge_ops needs {NUM_EDGES} entries, got {len(edge_ops)}")
        self.edge_ops = tuple(tuple(ops) for ops in edge_ops)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, c * 2))
                c *= 2
            layers.extend(SearchCell(self.edge_ops, c) for _ in range(cells_per_stage))
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)

    def path_of(self, ops: Sequence[str]) -> Path:
        """The candidate index on each edge of a cell given by its operation names."""
        try:
            return tuple(allowed.index(op) for allowed, op in zip(self.edge_ops, ops, strict=True))
        except ValueError:
            raise ValueError(f"cell {tuple(ops)} uses an operation outside the supernet's candidates {self.edge_ops}") from None

    def ops_of(self, path: Path) -> tuple[str, ...]:
        """The operation names of a path."""
        return tuple(allowed[i] for allowed, i in zip(self.edge_ops, path, strict=True))

    def forward(self, x: torch.Tensor, path: Path | None = None, weights: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits of the subnet `path` or of the relaxation with per-edge op `weights` (exactly one)."""
        if (path is None) == (weights is None):
            raise ValueError("give exactly one of path (a discrete cell) or weights (per-edge op weights)")
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, path, weights) if isinstance(layer, SearchCell) else layer(x)
        x = self.lastact(x)
        return self.classifier(x.mean((2, 3)))
