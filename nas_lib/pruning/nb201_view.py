"""How the three layers read the NB201 cell space (the mapping documented in docs/pruning.md).

Each of the 6 edges is one position. Layer 1 (macro) decides which operation *kinds* an edge may
carry: ``none`` (the edge is absent), ``skip_connect``, ``conv`` (any convolution) or
``avg_pool_3x3``. Layer 2 (hyperparameters) decides the convolution kernels an edge may use
(``nor_conv_1x1``, ``nor_conv_3x3``). Layer 3 (connections) decides, per edge, whether the
identity (``skip_connect``) and the absent edge (``none``) stay allowed.
"""

from __future__ import annotations

from nas_lib.space.nb201 import EDGES, NB201Space

CONVS: tuple[str, ...] = ("nor_conv_1x1", "nor_conv_3x3")
WIRES: tuple[str, ...] = ("skip_connect", "none")
KINDS: tuple[str, ...] = ("none", "skip_connect", "conv", "avg_pool_3x3")


def edge_key(k: int) -> str:
    """Group name of edge k, e.g. ``edge3`` (its nodes are in `edge_label`)."""
    return f"edge{k}"


def edge_label(k: int) -> str:
    dst, src = EDGES[k]
    return f"edge{k} (node {src} -> node {dst}{', input -> output' if (src, dst) == (0, 3) else ''})"


def kind_of(op: str) -> str:
    return "conv" if op in CONVS else op


def edge_index(key: str) -> int:
    return int(key.removeprefix("edge"))


def restrict_edges(space: NB201Space, keep_ops: dict[int, set[str]]) -> NB201Space:
    """`space` with edge k limited to `keep_ops[k]` (edges not named stay as they are)."""
    wanted = [tuple(op for op in allowed if k not in keep_ops or op in keep_ops[k]) for k, allowed in enumerate(space.edge_ops)]
    return NB201Space(wanted)  # raises ValueError naming the edge left empty
