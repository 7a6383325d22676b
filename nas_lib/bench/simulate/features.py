"""Mapping a proposal anywhere in the space onto the finite pool of trained architectures.

A table is a finite pool: an optimizer that proposes in the space (Optuna, SMAC, a mutation of
`nas_lib.search`) can only be scored on an architecture the table trained. The rule here: the
proposal and every pool row become a vector of structural features computed from the
architecture alone (depth; blocks per family; blocks per connection; per family, the mean
log2 of each hyperparameter and the mean relative position of its blocks), each feature
z-normalised over the table; the proposal is replaced by the nearest (Euclidean) pool row not
evaluated yet. The distance is recorded, so a run can say how far its proposals were moved.
No params/FLOPs feature: a proposal's would need building the network.

`ChoiceSpace` lists the space's choices (depth, then per block its family, connection and the
family's fields) for optimizers that propose by choices (define-by-run or a ConfigSpace).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas_lib.blocks import BLOCKS
from nas_lib.space.constraints import CONNECTIONS, block_types

_TOKEN = re.compile(r"^(\w+):(\w+)\((.*)\)$")
Block = tuple[str, str, dict[str, int]]  # (family, connection, fields)


def parse_blocks(arch: str) -> list[Block]:
    """The (family, connection, fields) of each block of a canonical hybrid string."""
    blocks: list[Block] = []
    for token in (t.strip() for t in arch.split(">")):
        m = _TOKEN.match(token)
        if not m:
            raise ValueError(f"cannot parse block {token!r} of {arch!r}")
        conn, family, inner = m.groups()
        blocks.append((family, conn, {k: int(v) for k, v in (kv.split("=") for kv in inner.split(",") if kv)}))
    return blocks


def feature_names() -> list[str]:
    """Names of the structural features, in vector order."""
    names = ["depth", *(f"n_{t}" for t in block_types()), *(f"n_{c}" for c in CONNECTIONS)]
    for t in block_types():
        names += [f"{t}_{f}" for f in BLOCKS.get(t).field_names] + [f"{t}_position"]
    return names


def block_features(blocks: Sequence[Block]) -> np.ndarray:
    """The raw (unnormalised) feature vector of a block list."""
    depth = len(blocks)
    out = [float(depth), *(sum(b[0] == t for b in blocks) for t in block_types()), *(sum(b[1] == c for b in blocks) for c in CONNECTIONS)]
    for t in block_types():
        mine = [(i, b[2]) for i, b in enumerate(blocks) if b[0] == t]
        for name in BLOCKS.get(t).field_names:
            out.append(float(np.mean([math.log2(p[name]) for _, p in mine if name in p])) if mine else 0.0)
        out.append(float(np.mean([i / max(depth - 1, 1) for i, _ in mine])) if mine else -1.0)
    return np.array(out, dtype=float)


class PoolMapper:
    """Nearest not-yet-used pool row to a proposal, in z-normalised feature space.

    Args:
        archs: every architecture of the table (the normalisation is over all of them).
    """

    def __init__(self, archs: Sequence[str]) -> None:
        raw = np.array([block_features(parse_blocks(a)) for a in archs])
        self.mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        self.points = (raw - self.mean) / self.std

    def vector(self, blocks: Sequence[Block]) -> np.ndarray:
        """The normalised features of a proposal."""
        return (block_features(blocks) - self.mean) / self.std

    def nearest(self, blocks: Sequence[Block], candidates: Iterable[int]) -> tuple[int, float]:
        """The candidate row closest to `blocks` and its distance (ties: the lower row).

        Raises:
            ValueError: no candidate is left.
        """
        rows = np.fromiter((int(c) for c in candidates), dtype=int)
        if len(rows) == 0:
            raise ValueError("no pool row is left to map a proposal to")
        d = np.linalg.norm(self.points[rows] - self.vector(blocks), axis=1)
        k = int(np.argmin(d))
        return int(rows[k]), float(d[k])

    def neighbour_correlation(self, rows: Sequence[int], values: np.ndarray) -> float:
        """Spearman correlation between each row's value and its nearest other row's value: how
        much a move to the nearest pool row keeps of the value (1: all, 0: a random jump)."""
        from scipy.stats import spearmanr

        idx = np.asarray(rows, dtype=int)
        if len(idx) < 3:
            return math.nan
        pts = self.points[idx]
        d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=2)
        np.fill_diagonal(d, np.inf)
        nn = idx[np.argmin(d, axis=1)]
        return float(spearmanr(values[idx], values[nn]).statistic)


@dataclass(frozen=True)
class ChoiceSpace:
    """The choices of a hybrid space, for optimizers that propose by choice.

    Attributes:
        depths: allowed numbers of blocks.
        families: allowed block families.
        connections: allowed connections.
        fields: per family, (field, allowed values) pairs.
    """

    depths: tuple[int, ...]
    families: tuple[str, ...]
    connections: tuple[str, ...]
    fields: Mapping[str, tuple[tuple[str, tuple[int, ...]], ...]]

    @classmethod
    def from_space(cls, space: Any) -> ChoiceSpace:
        """The choices of a `HybridSpace` under its constraints."""
        c = space.constraints
        fields = {t: tuple((n, tuple(c.values(t, n))) for n in BLOCKS.get(t).field_names) for t in space.types}
        return cls(tuple(space.depths()), tuple(space.types), tuple(CONNECTIONS), fields)

    def blocks(self, choose: Any) -> list[Block]:
        """Builds a block list by calling ``choose(name, options)`` for each choice, in the
        define-by-run order (a block's fields are asked only for the family it chose)."""
        depth = int(choose("depth", self.depths))
        out: list[Block] = []
        for i in range(depth):
            family = str(choose(f"b{i}_type", self.families))
            conn = str(choose(f"b{i}_conn", self.connections))
            out.append((family, conn, {n: int(choose(f"b{i}_{family}_{n}", vals)) for n, vals in self.fields[family]}))
        return out

    def flat(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every choice name with its options (for an unconditional ConfigSpace)."""
        names: list[tuple[str, tuple[Any, ...]]] = [("depth", self.depths)]
        for i in range(max(self.depths)):
            names += [(f"b{i}_type", self.families), (f"b{i}_conn", self.connections)]
            names += [(f"b{i}_{t}_{n}", vals) for t in self.families for n, vals in self.fields[t]]
        return names
