"""The constraint object of the hybrid space: what the LLM pruning layers fill in.

The full space is `HybridConstraints()`; a pruned space is the same class with narrower choices.
Every field is plain data (tuples, dicts of tuples) so it serialises to JSON for the LLM, the
Parquet artifacts and the MLflow params.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nas_lib.blocks import BLOCKS

STAGES: tuple[str, ...] = ("early", "mid", "late")
CONNECTIONS: tuple[str, ...] = ("sequential", "residual", "parallel")
MIN_DEPTH, MAX_DEPTH = 4, 20


def block_types() -> tuple[str, ...]:
    """The registered block families ordered by the code digit each declares (cnn 1, vit 2, mamba 3)."""
    return BLOCKS.names_by_digit()


def full_hyperparameters() -> dict[str, dict[str, tuple[int, ...]]]:
    return {t: dict(BLOCKS.get(t).fields) for t in block_types()}


def stage_of(position: int, depth: int) -> str:
    """early / mid / late by thirds of the network's depth."""
    return STAGES[min(len(STAGES) - 1, (len(STAGES) * position) // depth)]


def pair_key(prev: str, cur: str) -> str:
    return f"{prev}->{cur}"


@dataclass(frozen=True)
class HybridConstraints:
    """Choices and rules of a (possibly pruned) hybrid space. Empty mappings mean "no limit".

    Attributes:
        min_depth, max_depth: number of blocks (full space 4..20).
        stage_types: allowed block types per stage.
        hyperparameters: per block type, per field, the allowed values (a subset of the full list).
        stage_connections: allowed connections per stage.
        pair_connections: allowed connections keyed by ``"prev->cur"`` block types (blocks 2..D).
        forbidden_sequences: contiguous runs of block types that may not appear.
        preferred_sequences: runs that population generation favours (soft; size ignores them).
        type_fractions: per type, (min, max) share of the blocks.
    """

    min_depth: int = MIN_DEPTH
    max_depth: int = MAX_DEPTH
    stage_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hyperparameters: Mapping[str, Mapping[str, tuple[int, ...]]] = field(default_factory=dict)
    stage_connections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pair_connections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    forbidden_sequences: tuple[tuple[str, ...], ...] = ()
    preferred_sequences: tuple[tuple[str, ...], ...] = ()
    type_fractions: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = list(self.problems())
        if problems:
            raise ValueError("invalid hybrid-space constraints: " + "; ".join(problems))

    # -- lookups with defaults ----------------------------------------------------------------
    def types_at(self, stage: str) -> tuple[str, ...]:
        return tuple(self.stage_types.get(stage, block_types()))

    def values(self, block_type: str, name: str) -> tuple[int, ...]:
        full = dict(BLOCKS.get(block_type).fields)[name]
        return tuple(self.hyperparameters.get(block_type, {}).get(name, full))

    def connections(self, stage: str, prev: str | None, cur: str) -> tuple[str, ...]:
        allowed = self.stage_connections.get(stage, CONNECTIONS)
        if prev is not None and pair_key(prev, cur) in self.pair_connections:
            pair = self.pair_connections[pair_key(prev, cur)]
            allowed = tuple(c for c in allowed if c in pair)
        return tuple(c for c in CONNECTIONS if c in allowed)

    # -- validation ---------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Every way these constraints are malformed (unknown names, empty or foreign choices)."""
        out: list[str] = []
        types, full = block_types(), full_hyperparameters()
        if not MIN_DEPTH <= self.min_depth <= self.max_depth <= MAX_DEPTH:
            out.append(f"depth range {self.min_depth}..{self.max_depth} must lie within {MIN_DEPTH}..{MAX_DEPTH} and be non-empty")
        for stage, allowed in self.stage_types.items():
            if stage not in STAGES:
                out.append(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
            if not allowed:
                out.append(f"stage {stage!r} allows no block type")
            out += [f"stage {stage!r}: unknown block type {t!r}" for t in allowed if t not in types]
        for t, fields in self.hyperparameters.items():
            if t not in types:
                out.append(f"hyperparameters: unknown block type {t!r}")
                continue
            for name, values in fields.items():
                if name not in full[t]:
                    out.append(f"{t}: unknown field {name!r} (fields: {', '.join(full[t])})")
                elif not values:
                    out.append(f"{t}.{name}: no value allowed")
                else:
                    out += [f"{t}.{name}: {v} is not a choice of the full space {list(full[t][name])}" for v in values if v not in full[t][name]]
        for key, conns in list(self.stage_connections.items()) + list(self.pair_connections.items()):
            out += [f"connections {key!r}: unknown connection {c!r}" for c in conns if c not in CONNECTIONS]
        for key in self.pair_connections:
            prev, _, cur = key.partition("->")
            if prev not in types or cur not in types:
                out.append(f"pair_connections key {key!r} must be 'type->type' with types {', '.join(types)}")
        for seq in self.forbidden_sequences + self.preferred_sequences:
            if len(seq) < 2 or any(t not in types for t in seq):
                out.append(f"type sequence {list(seq)} needs 2+ known block types")
        for t, (lo, hi) in self.type_fractions.items():
            if t not in types or not 0.0 <= lo <= hi <= 1.0:
                out.append(f"type_fractions {t!r}: ({lo}, {hi}) must name a type and satisfy 0 <= min <= max <= 1")
        return out

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["hyperparameters"] = {t: {k: list(v) for k, v in f.items()} for t, f in self.hyperparameters.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HybridConstraints:
        """Builds constraints from a JSON-like dict; unknown keys raise ValueError."""
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown constraint keys {sorted(extra)}; known: {sorted(known)}")
        d = dict(data)
        tup = lambda v: tuple(v)  # noqa: E731
        if "stage_types" in d:
            d["stage_types"] = {k: tup(v) for k, v in d["stage_types"].items()}
        if "hyperparameters" in d:
            d["hyperparameters"] = {t: {k: tuple(int(x) for x in v) for k, v in f.items()} for t, f in d["hyperparameters"].items()}
        for key in ("stage_connections", "pair_connections"):
            if key in d:
                d[key] = {k: tup(v) for k, v in d[key].items()}
        for key in ("forbidden_sequences", "preferred_sequences"):
            if key in d:
                d[key] = tuple(tuple(s) for s in d[key])
        if "type_fractions" in d:
            d["type_fractions"] = {k: (float(v[0]), float(v[1])) for k, v in d["type_fractions"].items()}
        return cls(**d)

    def narrowed(self, **changes: Any) -> HybridConstraints:
        """A copy with some fields replaced (validated)."""
        return replace(self, **changes)
