"""Layer 1, macro structure: block types per stage, depth range, type shares, preferred and
forbidden type sequences (hybrid space); operation kinds per edge (NB201).

The cut it proposes is checked against the measured retention of the best architectures
(see `nas_lib.pruning.measure`) and relaxed by the guard when it drops them.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from nas_lib.pruning.base import GroupDecision, Groups, HybridMacroDecision, Option, PruningLayer
from nas_lib.pruning.nb201_view import KINDS, edge_index, edge_key, kind_of, restrict_edges
from nas_lib.space.constraints import STAGES, block_types, stage_of
from nas_lib.space.hybrid import HybridSpace
from nas_lib.space.nb201 import NB201Space


class MacroLayer(PruningLayer):
    name = "macro"
    task = (
        "Decide the macro structure: which block types each stage (early/mid/late third of the "
        "network) may use, the depth range, optional per-type shares of the blocks, and type "
        "sequences to prefer or forbid. On NB201, decide which operation kinds (none, "
        "skip_connect, conv, avg_pool_3x3) each edge position may carry."
    )

    def decision_model(self, space: Any) -> type[GroupDecision]:
        return HybridMacroDecision if isinstance(space, HybridSpace) else GroupDecision

    def groups(self, space: Any) -> Groups:
        if isinstance(space, NB201Space):
            return {edge_key(k): tuple(dict.fromkeys(kind_of(op) for op in ops)) for k, ops in enumerate(space.edge_ops)}
        return {f"stage:{s}": space.constraints.types_at(s) for s in STAGES}

    def features(self, space: Any, spec: Hashable) -> dict[str, list[Option]]:
        if isinstance(space, NB201Space):
            return {edge_key(k): [kind_of(op)] for k, op in enumerate(spec.ops)}
        out: dict[str, list[Option]] = {f"stage:{s}": [] for s in STAGES}
        for i, t in enumerate(spec.types):
            out[f"stage:{stage_of(i, spec.depth)}"].append(t)
        return out

    def apply(self, space: Any, decision: GroupDecision) -> Any:
        if isinstance(space, NB201Space):
            keep = {edge_index(k): {op for op in space.edge_ops[edge_index(k)] if kind_of(op) in {str(v) for v in kinds}} for k, kinds in decision.keep.items()}
            return restrict_edges(space, keep)
        return HybridSpace(self._hybrid_constraints(space, decision))

    def _hybrid_constraints(self, space: HybridSpace, d: HybridMacroDecision) -> Any:
        c = space.constraints
        stage_types = dict(c.stage_types)
        for key, kept in d.keep.items():
            stage = key.removeprefix("stage:")
            stage_types[stage] = tuple(t for t in c.types_at(stage) if t in {str(v) for v in kept})
        fractions = dict(c.type_fractions)
        for t, (lo, hi) in d.type_fractions.items():
            old = fractions.get(t, (0.0, 1.0))
            fractions[t] = (max(old[0], lo), min(old[1], hi))
        return c.narrowed(
            stage_types=stage_types,
            min_depth=max(c.min_depth, d.min_depth or c.min_depth),
            max_depth=min(c.max_depth, d.max_depth or c.max_depth),
            type_fractions=fractions,
            forbidden_sequences=_union(c.forbidden_sequences, d.forbidden_sequences),
            preferred_sequences=_union(c.preferred_sequences, d.preferred_sequences),
        )

    def extra_problems(self, space: Any, decision: GroupDecision) -> list[str]:
        if not isinstance(decision, HybridMacroDecision):
            return []
        c, types, out = space.constraints, block_types(), []
        lo, hi = decision.min_depth or c.min_depth, decision.max_depth or c.max_depth
        if not c.min_depth <= lo <= hi <= c.max_depth:
            out.append(f"depth range {lo}..{hi} must be non-empty and lie within the current {c.min_depth}..{c.max_depth}")
        for t, (a, b) in decision.type_fractions.items():
            if t not in types or not 0.0 <= a <= b <= 1.0:
                out.append(f"type_fractions {t!r}: ({a}, {b}) must name a type ({', '.join(types)}) with 0 <= min <= max <= 1")
        for seq in decision.forbidden_sequences + decision.preferred_sequences:
            if len(seq) < 2 or any(t not in types for t in seq):
                out.append(f"type sequence {seq} needs 2+ known block types ({', '.join(types)})")
        return out

    def widenings(self, space: Any, decision: GroupDecision) -> list[tuple[str, GroupDecision]]:
        if not isinstance(decision, HybridMacroDecision):
            return []
        c, out = space.constraints, []
        if decision.min_depth is not None and decision.min_depth > c.min_depth:
            out.append((f"min_depth {decision.min_depth - 1}", decision.model_copy(update={"min_depth": decision.min_depth - 1})))
        if decision.max_depth is not None and decision.max_depth < c.max_depth:
            out.append((f"max_depth {decision.max_depth + 1}", decision.model_copy(update={"max_depth": decision.max_depth + 1})))
        for t in decision.type_fractions:
            rest = {k: v for k, v in decision.type_fractions.items() if k != t}
            out.append((f"drop type share of {t}", decision.model_copy(update={"type_fractions": rest})))
        for i, seq in enumerate(decision.forbidden_sequences):
            rest = decision.forbidden_sequences[:i] + decision.forbidden_sequences[i + 1:]
            out.append((f"allow {' > '.join(seq)}", decision.model_copy(update={"forbidden_sequences": rest})))
        return out

    def describe_extra(self, space: Any) -> dict[str, Any]:
        if isinstance(space, NB201Space):
            return {"kinds": list(KINDS), "conv means": "nor_conv_1x1 or nor_conv_3x3 (layer 2 picks the kernel)"}
        c = space.constraints
        return {
            "block_types": list(block_types()),
            "depth_range": [c.min_depth, c.max_depth],
            "type_fractions": {t: list(v) for t, v in c.type_fractions.items()},
            "forbidden_sequences": [list(s) for s in c.forbidden_sequences],
        }


def _union(old: tuple[tuple[str, ...], ...], new: list[list[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(dict.fromkeys(list(old) + [tuple(s) for s in new]))
