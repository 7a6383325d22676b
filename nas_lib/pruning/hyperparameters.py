"""Layer 2, hyperparameters: per block type, a subset of each field's choice list, given the
types layer 1 kept (hybrid space); the convolution kernels each edge may use (NB201).

Checks beyond subsets: every block type still allowed somewhere keeps at least one valid
combination of its fields (e.g. a ViT needs a kept qkv_dim divisible by a kept num_heads).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from nas_lib.blocks import BLOCKS
from nas_lib.pruning.base import GroupDecision, Groups, Option, PruningLayer
from nas_lib.pruning.nb201_view import CONVS, edge_index, edge_key, restrict_edges
from nas_lib.space.constraints import STAGES
from nas_lib.space.hybrid import HybridSpace
from nas_lib.space.nb201 import NB201Space


def live_types(space: HybridSpace) -> list[str]:
    """Block types that some stage still allows, in registration order."""
    allowed = {t for s in STAGES for t in space.constraints.types_at(s)}
    return [t for t in space.types if t in allowed]


class HyperparametersLayer(PruningLayer):
    name = "hyperparameters"
    task = (
        "Decide, for each block type still allowed, which values of each hyperparameter to keep "
        "(a subset of the current choice list). On NB201, decide which convolution kernels "
        "(nor_conv_1x1, nor_conv_3x3) each edge that may carry a convolution keeps."
    )

    def groups(self, space: Any) -> Groups:
        if isinstance(space, NB201Space):
            return {edge_key(k): tuple(op for op in ops if op in CONVS) for k, ops in enumerate(space.edge_ops) if any(op in CONVS for op in ops)}
        c = space.constraints
        return {f"{t}.{name}": c.values(t, name) for t in live_types(space) for name in BLOCKS.get(t).field_names}

    def features(self, space: Any, spec: Hashable) -> dict[str, list[Option]]:
        if isinstance(space, NB201Space):
            return {edge_key(k): [op] if op in CONVS else [] for k, op in enumerate(spec.ops)}
        out: dict[str, list[Option]] = {key: [] for key in self.groups(space)}
        for block in spec.blocks:
            for name, value in block.params:
                out.setdefault(f"{block.type}.{name}", []).append(value)
        return out

    def apply(self, space: Any, decision: GroupDecision) -> Any:
        if isinstance(space, NB201Space):
            keep = {}
            for key, kernels in decision.keep.items():
                k = edge_index(key)
                kept = {str(v) for v in kernels}
                keep[k] = {op for op in space.edge_ops[k] if op not in CONVS or op in kept}
            return restrict_edges(space, keep)
        c = space.constraints
        hp = {t: dict(fields) for t, fields in c.hyperparameters.items()}
        for key, values in decision.keep.items():
            t, _, name = key.partition(".")
            kept = {str(v) for v in values}
            hp.setdefault(t, {})[name] = tuple(v for v in c.values(t, name) if str(v) in kept)
        return HybridSpace(c.narrowed(hyperparameters=hp))

    def extra_problems(self, space: Any, decision: GroupDecision) -> list[str]:
        if isinstance(space, NB201Space) or not decision.keep or not set(decision.keep) <= set(self.groups(space)):
            return []  # unknown groups are reported by the generic check
        try:
            narrowed = self.apply(space, decision)
        except ValueError:
            return []  # reported by the generic check
        return [
            f"{t}: no kept combination of {', '.join(BLOCKS.get(t).field_names)} is valid (e.g. qkv_dim must be divisible by num_heads)"
            for t in live_types(narrowed)
            if not narrowed.combos[t]
        ]
