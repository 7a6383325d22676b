"""How the three pruning layers read the NB201 cell space (the mapping documented in docs/pruning.md).

Each of the 6 edges is one choice group, ``edge0`` .. ``edge5``. Layer 1 (macro) decides which
operation *kinds* an edge may carry: ``none`` (the edge is absent), ``skip_connect``, ``conv`` (any
convolution) or ``avg_pool_3x3``. Layer 2 (hyperparameters) decides the convolution kernels an
edge may use (``nor_conv_1x1``, ``nor_conv_3x3``). Layer 3 (connections) decides, per edge,
whether the identity (``skip_connect``) and the absent edge (``none``) stay allowed.
"""

from __future__ import annotations

from typing import Any

from nas_lib.space.narrowing import GroupDecision, Groups, LayerView, Option
from nas_lib.space.nb201 import NB201Space

CONVS: tuple[str, ...] = ("nor_conv_1x1", "nor_conv_3x3")
WIRES: tuple[str, ...] = ("skip_connect", "none")
KINDS: tuple[str, ...] = ("none", "skip_connect", "conv", "avg_pool_3x3")


def edge_key(k: int) -> str:
    """Group name of edge k, e.g. ``edge3`` (the k-th edge of the NB201 string, see `EDGES`)."""
    return f"edge{k}"


def kind_of(op: str) -> str:
    return "conv" if op in CONVS else op


def edge_index(key: str) -> int:
    return int(key.removeprefix("edge"))


def restrict_edges(space: NB201Space, keep_ops: dict[int, set[str]]) -> NB201Space:
    """`space` with edge k limited to `keep_ops[k]` (edges not named stay as they are)."""
    wanted = [tuple(op for op in allowed if k not in keep_ops or op in keep_ops[k]) for k, allowed in enumerate(space.edge_ops)]
    return NB201Space(wanted)  # raises ValueError naming the edge left empty


class _SubsetView(LayerView):
    """A layer that decides, per edge, which of the operations in `MEMBERS` stay allowed (listed
    in `MEMBERS` order; edges that allow none of them are no group)."""

    MEMBERS: tuple[str, ...] = ()
    space: NB201Space

    def groups(self) -> Groups:
        return {
            edge_key(k): tuple(op for op in self.MEMBERS if op in ops)
            for k, ops in enumerate(self.space.edge_ops)
            if any(op in self.MEMBERS for op in ops)
        }

    def features(self, spec: Any) -> dict[str, list[Option]]:
        return {edge_key(k): [op] if op in self.MEMBERS else [] for k, op in enumerate(spec.ops)}

    def apply(self, decision: GroupDecision) -> NB201Space:
        keep = {}
        for key, options in decision.keep.items():
            k, kept = edge_index(key), {str(v) for v in options}
            keep[k] = {op for op in self.space.edge_ops[k] if op not in self.MEMBERS or op in kept}
        return restrict_edges(self.space, keep)


@NB201Space.prune_views.register("macro")
class MacroView(LayerView):
    """Operation kinds per edge."""

    space: NB201Space

    def groups(self) -> Groups:
        return {edge_key(k): tuple(dict.fromkeys(kind_of(op) for op in ops)) for k, ops in enumerate(self.space.edge_ops)}

    def features(self, spec: Any) -> dict[str, list[Option]]:
        return {edge_key(k): [kind_of(op)] for k, op in enumerate(spec.ops)}

    def apply(self, decision: GroupDecision) -> NB201Space:
        edge_ops = self.space.edge_ops
        keep = {edge_index(k): {op for op in edge_ops[edge_index(k)] if kind_of(op) in {str(v) for v in kinds}} for k, kinds in decision.keep.items()}
        return restrict_edges(self.space, keep)

    def describe_extra(self) -> dict[str, Any]:
        return {"kinds": list(KINDS), "conv means": "nor_conv_1x1 or nor_conv_3x3 (layer 2 picks the kernel)"}


@NB201Space.prune_views.register("hyperparameters")
class KernelsView(_SubsetView):
    """The convolution kernels each edge that may carry a convolution keeps."""

    MEMBERS = CONVS


@NB201Space.prune_views.register("connections")
class WiresView(_SubsetView):
    """Whether each edge may stay an identity or be absent."""

    MEMBERS = WIRES
    # an edge may lose both wires when it keeps an operation; the generic check still refuses
    # an edge left with nothing
    allow_empty_groups = True
