"""Layer 3, connections: the connection types (sequential, residual, parallel) allowed per
stage and per pair of consecutive block types, given layer 2's space (hybrid); whether each
NB201 edge may stay an identity (skip_connect) or be absent (none).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from nas_lib.pruning.base import GroupDecision, Groups, Option, PruningLayer
from nas_lib.pruning.hyperparameters import live_types
from nas_lib.pruning.nb201_view import WIRES, edge_index, edge_key, restrict_edges
from nas_lib.space.constraints import CONNECTIONS, STAGES, pair_key, stage_of
from nas_lib.space.hybrid import HybridSpace
from nas_lib.space.nb201 import NB201Space


class ConnectionsLayer(PruningLayer):
    name = "connections"
    # NB201: an edge may lose both wires when it keeps an operation; the generic check still
    # refuses an edge left with nothing.
    allow_empty_groups = True
    task = (
        "Decide the connection types (sequential, residual, parallel) allowed in each stage and "
        "for each pair of consecutive block types ('prev->cur'). On NB201, decide for each edge "
        "whether it may remain an identity (skip_connect) or be absent (none)."
    )

    def groups(self, space: Any) -> Groups:
        if isinstance(space, NB201Space):
            return {edge_key(k): tuple(op for op in WIRES if op in ops) for k, ops in enumerate(space.edge_ops) if any(op in WIRES for op in ops)}
        c, types = space.constraints, live_types(space)
        out: Groups = {f"stage:{s}": tuple(c.stage_connections.get(s, CONNECTIONS)) for s in STAGES}
        for a in types:
            for b in types:
                out[f"pair:{pair_key(a, b)}"] = tuple(x for x in CONNECTIONS if x in c.pair_connections.get(pair_key(a, b), CONNECTIONS))
        return out

    def features(self, space: Any, spec: Hashable) -> dict[str, list[Option]]:
        if isinstance(space, NB201Space):
            return {edge_key(k): [op] if op in WIRES else [] for k, op in enumerate(spec.ops)}
        out: dict[str, list[Option]] = {key: [] for key in self.groups(space)}
        for i, block in enumerate(spec.blocks):
            out.setdefault(f"stage:{stage_of(i, spec.depth)}", []).append(block.connection)
            if i:
                out.setdefault(f"pair:{pair_key(spec.blocks[i - 1].type, block.type)}", []).append(block.connection)
        return out

    def apply(self, space: Any, decision: GroupDecision) -> Any:
        if isinstance(space, NB201Space):
            keep = {}
            for key, wires in decision.keep.items():
                k, kept = edge_index(key), {str(v) for v in wires}
                keep[k] = {op for op in space.edge_ops[k] if op not in WIRES or op in kept}
            return restrict_edges(space, keep)
        c = space.constraints
        stage_conns, pair_conns = dict(c.stage_connections), dict(c.pair_connections)
        current = self.groups(space)
        for key, values in decision.keep.items():
            kept = tuple(x for x in current[key] if x in {str(v) for v in values})
            kind, _, name = key.partition(":")
            (stage_conns if kind == "stage" else pair_conns)[name] = kept
        return HybridSpace(c.narrowed(stage_connections=stage_conns, pair_connections=pair_conns))

    def extra_problems(self, space: Any, decision: GroupDecision) -> list[str]:
        if isinstance(space, NB201Space):
            return []
        return [f"{key}: keeps no connection" for key, values in decision.keep.items() if not values]
