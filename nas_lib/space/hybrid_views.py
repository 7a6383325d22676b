"""How the three pruning layers read the hybrid CNN/ViT/Mamba space (see docs/pruning.md).

Layer 1 (macro): block types per stage (``stage:early/mid/late``), the depth range, per-type
shares and preferred / forbidden type sequences. Layer 2 (hyperparameters): per block type still
allowed, a subset of each field's values (``vit.num_heads``); every such type must keep one valid
combination (a kept ``qkv_dim`` divisible by a kept ``num_heads``). Layer 3 (connections): the
connection types per stage and per pair of consecutive block types (``pair:cnn->vit``).
Every decision becomes a narrower `HybridConstraints`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nas_lib.blocks import BLOCKS
from nas_lib.space.constraints import CONNECTIONS, STAGES, HybridConstraints, block_types, pair_key, stage_of
from nas_lib.space.hybrid import HybridSpace
from nas_lib.space.narrowing import GroupDecision, Groups, LayerView, Option


class HybridMacroDecision(GroupDecision):
    """Macro decision on the hybrid space: stage types plus depth, type shares and sequences."""

    min_depth: int | None = Field(default=None, description="smallest number of blocks (null: unchanged).")
    max_depth: int | None = Field(default=None, description="largest number of blocks (null: unchanged).")
    type_fractions: dict[str, tuple[float, float]] = Field(default_factory=dict, description="type -> (min, max) share of the blocks.")
    preferred_sequences: list[list[str]] = Field(default_factory=list, description="runs of block types to favour (soft).")
    forbidden_sequences: list[list[str]] = Field(default_factory=list, description="runs of block types that may not appear.")


def live_types(space: HybridSpace) -> list[str]:
    """Block types that some stage still allows, in code-digit order."""
    allowed = {t for s in STAGES for t in space.constraints.types_at(s)}
    return [t for t in space.types if t in allowed]


@HybridSpace.prune_views.register("macro")
class MacroView(LayerView):
    """Block types per stage, depth range, type shares and type sequences."""

    decision_model = HybridMacroDecision
    space: HybridSpace

    def groups(self) -> Groups:
        return {f"stage:{s}": self.space.constraints.types_at(s) for s in STAGES}

    def features(self, spec: Any) -> dict[str, list[Option]]:
        out: dict[str, list[Option]] = {f"stage:{s}": [] for s in STAGES}
        for i, t in enumerate(spec.types):
            out[f"stage:{stage_of(i, spec.depth)}"].append(t)
        return out

    def apply(self, decision: GroupDecision) -> HybridSpace:
        macro = decision if isinstance(decision, HybridMacroDecision) else HybridMacroDecision(keep=decision.keep)
        return HybridSpace(self._constraints(macro))

    def _constraints(self, d: HybridMacroDecision) -> HybridConstraints:
        c = self.space.constraints
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

    def extra_problems(self, decision: GroupDecision) -> list[str]:
        if not isinstance(decision, HybridMacroDecision):
            return []
        c, types, out = self.space.constraints, block_types(), []
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

    def widenings(self, decision: GroupDecision) -> list[tuple[str, GroupDecision]]:
        if not isinstance(decision, HybridMacroDecision):
            return []
        c, out = self.space.constraints, list[tuple[str, GroupDecision]]()
        if decision.min_depth is not None and decision.min_depth > c.min_depth:
            out.append((f"min_depth {decision.min_depth - 1}", decision.model_copy(update={"min_depth": decision.min_depth - 1})))
        if decision.max_depth is not None and decision.max_depth < c.max_depth:
            out.append((f"max_depth {decision.max_depth + 1}", decision.model_copy(update={"max_depth": decision.max_depth + 1})))
        for t in decision.type_fractions:
            rest = {k: v for k, v in decision.type_fractions.items() if k != t}
            out.append((f"drop type share of {t}", decision.model_copy(update={"type_fractions": rest})))
        for i, seq in enumerate(decision.forbidden_sequences):
            others = decision.forbidden_sequences[:i] + decision.forbidden_sequences[i + 1 :]
            out.append((f"allow {' > '.join(seq)}", decision.model_copy(update={"forbidden_sequences": others})))
        return out

    def describe_extra(self) -> dict[str, Any]:
        c = self.space.constraints
        return {
            "block_types": list(block_types()),
            "depth_range": [c.min_depth, c.max_depth],
            "type_fractions": {t: list(v) for t, v in c.type_fractions.items()},
            "forbidden_sequences": [list(s) for s in c.forbidden_sequences],
        }


def _union(old: tuple[tuple[str, ...], ...], new: list[list[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(dict.fromkeys(list(old) + [tuple(s) for s in new]))


@HybridSpace.prune_views.register("hyperparameters")
class HyperparametersView(LayerView):
    """Per live block type, a subset of each field's values."""

    space: HybridSpace

    def groups(self) -> Groups:
        c = self.space.constraints
        return {f"{t}.{name}": c.values(t, name) for t in live_types(self.space) for name in BLOCKS.get(t).field_names}

    def features(self, spec: Any) -> dict[str, list[Option]]:
        out: dict[str, list[Option]] = {key: [] for key in self.groups()}
        for block in spec.blocks:
            for name, value in block.params:
                out.setdefault(f"{block.type}.{name}", []).append(value)
        return out

    def apply(self, decision: GroupDecision) -> HybridSpace:
        c = self.space.constraints
        hp = {t: dict(fields) for t, fields in c.hyperparameters.items()}
        for key, values in decision.keep.items():
            t, _, name = key.partition(".")
            kept = {str(v) for v in values}
            hp.setdefault(t, {})[name] = tuple(v for v in c.values(t, name) if str(v) in kept)
        return HybridSpace(c.narrowed(hyperparameters=hp))

    def extra_problems(self, decision: GroupDecision) -> list[str]:
        if not decision.keep or not set(decision.keep) <= set(self.groups()):
            return []  # unknown groups are reported by the generic check
        try:
            narrowed = self.apply(decision)
        except ValueError:
            return []  # reported by the generic check
        return [
            f"{t}: no kept combination of {', '.join(BLOCKS.get(t).field_names)} is valid (e.g. qkv_dim must be divisible by num_heads)"
            for t in live_types(narrowed)
            if not narrowed.combos[t]
        ]


@HybridSpace.prune_views.register("connections")
class ConnectionsView(LayerView):
    """Connection types per stage and per pair of consecutive live block types."""

    space: HybridSpace

    def groups(self) -> Groups:
        c, types = self.space.constraints, live_types(self.space)
        out: Groups = {f"stage:{s}": tuple(c.stage_connections.get(s, CONNECTIONS)) for s in STAGES}
        for a in types:
            for b in types:
                out[f"pair:{pair_key(a, b)}"] = tuple(x for x in CONNECTIONS if x in c.pair_connections.get(pair_key(a, b), CONNECTIONS))
        return out

    def features(self, spec: Any) -> dict[str, list[Option]]:
        out: dict[str, list[Option]] = {key: [] for key in self.groups()}
        blocks = spec.blocks
        for i, block in enumerate(blocks):
            out.setdefault(f"stage:{stage_of(i, spec.depth)}", []).append(block.connection)
            if i:
                out.setdefault(f"pair:{pair_key(blocks[i - 1].type, block.type)}", []).append(block.connection)
        return out

    def apply(self, decision: GroupDecision) -> HybridSpace:
        c = self.space.constraints
        stage_conns, pair_conns = dict(c.stage_connections), dict(c.pair_connections)
        current = self.groups()
        for key, values in decision.keep.items():
            kept = tuple(x for x in current[key] if x in {str(v) for v in values})
            kind, _, name = key.partition(":")
            (stage_conns if kind == "stage" else pair_conns)[name] = kept
        return HybridSpace(c.narrowed(stage_connections=stage_conns, pair_connections=pair_conns))

    def extra_problems(self, decision: GroupDecision) -> list[str]:
        return [f"{key}: keeps no connection" for key, values in decision.keep.items() if not values]
