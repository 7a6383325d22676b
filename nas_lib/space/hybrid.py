"""The hybrid CNN / ViT / Mamba space: a conv stem, then 4..20 blocks, each with a block type,
its type's hyperparameters and a connection to the previous block.

Exact size and uniform sampling come from one dynamic programme over block positions whose state
is the last few block types (for forbidden sequences and pair-wise connection rules) and, when
type proportions are constrained, the count of each type so far.

Canonical string: blocks joined by `` > ``, each ``connection:type(field=value,...)``, e.g.
``residual:cnn(planes=64,stride=2,cardinality=4,base_width=64) > sequential:vit(num_heads=4,...)``.
Code: see `nas_lib.space.hybrid_code` (fixed length, the same meaning in every pruned space).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

import numpy as np
from torch import nn

from nas_lib.blocks import BLOCKS
from nas_lib.space import hybrid_code
from nas_lib.space.base import InvalidArchitectureError, SearchSpace, randbelow
from nas_lib.space.constraints import CONNECTIONS, HybridConstraints, block_types, stage_of

T = TypeVar("T")

_TOKEN = re.compile(r"^(\w+):(\w+)\((.*)\)$")


@dataclass(frozen=True)
class BlockSpec:
    """One block: its family, its hyperparameters (in the family's field order) and connection."""

    type: str
    params: tuple[tuple[str, int], ...]
    connection: str = "sequential"

    @classmethod
    def make(cls, type: str, connection: str = "sequential", **params: int) -> BlockSpec:
        """Builds a block spec with fields put in the family's canonical order."""
        order = BLOCKS.get(type).field_names if type in BLOCKS else tuple(sorted(params))
        rank = {name: k for k, name in enumerate(order)}
        items = sorted(params.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        return cls(type, tuple((k, int(v)) for k, v in items), connection)

    @property
    def p(self) -> dict[str, int]:
        return dict(self.params)

    def __str__(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.connection}:{self.type}({inner})"


@dataclass(frozen=True)
class HybridArch:
    """A hybrid network: the ordered blocks after the stem."""

    blocks: tuple[BlockSpec, ...]

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(b.type for b in self.blocks)

    def __str__(self) -> str:
        return " > ".join(str(b) for b in self.blocks)


Policy = Callable[[str, int, Sequence[str]], str]  # (decision, block index, valid options) -> the option taken


class HybridSpace(SearchSpace):
    """The hybrid space under a set of `HybridConstraints` (the full space by default)."""

    name = "hybrid"

    def __init__(self, constraints: HybridConstraints | None = None) -> None:
        self.constraints = constraints or HybridConstraints()
        self.types = block_types()
        self.combos = {t: self._valid_combos(t) for t in self.types}
        self._memory = max([len(s) for s in self.constraints.forbidden_sequences] + [2]) - 1
        self._ways: dict[int, Callable[..., int]] = {}

    # -- counting -----------------------------------------------------------------------------
    def _valid_combos(self, t: str) -> list[tuple[tuple[str, int], ...]]:
        fam = BLOCKS.get(t)
        names = fam.field_names
        out = []
        for values in itertools.product(*(self.constraints.values(t, n) for n in names)):
            params = tuple(zip(names, values))
            if fam.rule(dict(params)) is None:
                out.append(params)
        return out

    def _step(self, i: int, depth: int, hist: tuple[str, ...], t: str) -> int:
        """Ways to place a block of type `t` at position i after `hist` (hyperparameters x connections)."""
        stage = stage_of(i, depth)
        if t not in self.constraints.types_at(stage) or not self.combos[t]:
            return 0
        seq = hist + (t,)
        for bad in self.constraints.forbidden_sequences:
            if seq[-len(bad) :] == bad:
                return 0
        prev = hist[-1] if hist else None
        return len(self.combos[t]) * len(self.constraints.connections(stage, prev, t))

    def _count_ok(self, counts: tuple[int, ...], depth: int, final: bool) -> bool:
        for t, (lo, hi) in self.constraints.type_fractions.items():
            n = counts[self.types.index(t)]
            if n > hi * depth + 1e-9 or (final and n < lo * depth - 1e-9):
                return False
        return True

    def _push(self, hist: tuple[str, ...], counts: tuple[int, ...], t: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        hist = (hist + (t,))[-self._memory :]
        if counts:
            k = self.types.index(t)
            counts = counts[:k] + (counts[k] + 1,) + counts[k + 1 :]
        return hist, counts

    def _start(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        return (), (0,) * len(self.types) if self.constraints.type_fractions else ()

    def _completions(self, depth: int) -> Callable[[int, tuple[str, ...], tuple[int, ...]], int]:
        if depth not in self._ways:

            @cache
            def ways(i: int, hist: tuple[str, ...], counts: tuple[int, ...]) -> int:
                if counts and not self._count_ok(counts, depth, final=i == depth):
                    return 0
                if i == depth:
                    return 1
                total = 0
                for t in self.types:
                    step = self._step(i, depth, hist, t)
                    if step:
                        total += step * ways(i + 1, *self._push(hist, counts, t))
                return total

            self._ways[depth] = ways
        return self._ways[depth]

    def depths(self) -> range:
        return range(self.constraints.min_depth, self.constraints.max_depth + 1)

    def size_by_depth(self) -> dict[int, int]:
        """Exact number of valid architectures of each depth."""
        return {d: self._completions(d)(0, *self._start()) for d in self.depths()}

    def size(self) -> int:
        return sum(self.size_by_depth().values())

    def held_depths(self) -> list[int]:
        """The depths at which the space holds at least one architecture."""
        return [d for d, n in self.size_by_depth().items() if n]

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, depth: int | None = None, policy: Policy | None = None) -> HybridArch:
        """Uniform over the whole space, or over the architectures of one `depth` when given
        (uniform sampling of the full space almost always picks the deepest networks).

        With `policy`, block i's type is ``policy("type", i, types)`` and its connection
        ``policy("connection", i, connections)``, each chosen among the options that still lead
        to a valid architecture (a learned sampler's; the hyperparameters stay uniform)."""
        by_depth = self.size_by_depth()
        if depth is not None:
            by_depth = {depth: by_depth.get(depth, 0)}
        total = sum(by_depth.values())
        if total == 0:
            raise ValueError(f"no architecture to sample (depth={depth}) in this space:\n" + self.describe())
        depth = _pick(list(by_depth.items()), randbelow(rng, total))
        ways = self._completions(depth)
        hist, counts = self._start()
        blocks = []
        for i in range(depth):
            options = []
            for t in self.types:
                step = self._step(i, depth, hist, t)
                if step:
                    options.append((t, step * ways(i + 1, *self._push(hist, counts, t))))
            t = _pick(options, randbelow(rng, sum(w for _, w in options))) if policy is None else policy("type", i, [t for t, _ in options])
            stage = stage_of(i, depth)
            conns = self.constraints.connections(stage, hist[-1] if hist else None, t)
            params = self.combos[t][int(rng.integers(len(self.combos[t])))]
            conn = conns[int(rng.integers(len(conns)))] if policy is None else policy("connection", i, list(conns))
            blocks.append(BlockSpec(t, params, conn))
            hist, counts = self._push(hist, counts, t)
        return HybridArch(tuple(blocks))

    def preference(self, spec: HybridArch) -> int:
        """How many preferred type sequences `spec` contains (population generation favours these)."""
        types = spec.types
        return sum(
            1 for seq in self.constraints.preferred_sequences for k in range(len(types) - len(seq) + 1) if types[k : k + len(seq)] == tuple(seq)
        )

    # -- membership ---------------------------------------------------------------------------
    def validate(self, spec: HybridArch) -> None:
        c = self.constraints
        if not isinstance(spec, HybridArch):
            raise InvalidArchitectureError("spec", f"expected a HybridArch, got {type(spec).__name__}")
        if not c.min_depth <= spec.depth <= c.max_depth:
            raise InvalidArchitectureError("depth", f"{spec.depth} blocks is outside {c.min_depth}..{c.max_depth}")
        for i, block in enumerate(spec.blocks):
            self._validate_block(i, spec, block)
        for bad in c.forbidden_sequences:
            for k in range(spec.depth - len(bad) + 1):
                if spec.types[k : k + len(bad)] == tuple(bad):
                    raise InvalidArchitectureError(f"blocks {k}..{k + len(bad) - 1}", f"type sequence {' > '.join(bad)} is forbidden")
        if c.type_fractions:
            counts = tuple(spec.types.count(t) for t in self.types)
            if not self._count_ok(counts, spec.depth, final=True):
                mix = ", ".join(f"{t} {counts[self.types.index(t)]}/{spec.depth}" for t in c.type_fractions)
                raise InvalidArchitectureError("type mix", f"{mix} breaks type_fractions {dict(c.type_fractions)}")

    def _validate_block(self, i: int, spec: HybridArch, block: BlockSpec) -> None:
        c = self.constraints
        if block.type not in self.types:
            raise InvalidArchitectureError(f"block {i} type", f"unknown block type {block.type!r} (known: {', '.join(self.types)})")
        stage = stage_of(i, spec.depth)
        if block.type not in c.types_at(stage):
            raise InvalidArchitectureError(
                f"block {i} type", f"{block.type} is not allowed in the {stage} stage (allowed: {', '.join(c.types_at(stage))})"
            )
        fam = BLOCKS.get(block.type)
        params = block.p
        if tuple(k for k, _ in block.params) != fam.field_names:
            raise InvalidArchitectureError(f"block {i} {block.type}", f"fields {list(params)} differ from {list(fam.field_names)}")
        for name, full in fam.fields:
            allowed = c.values(block.type, name)
            if params[name] not in full:
                raise InvalidArchitectureError(f"block {i} {block.type}.{name}", f"{params[name]} is not a choice (choices: {list(full)})")
            if params[name] not in allowed:
                raise InvalidArchitectureError(
                    f"block {i} {block.type}.{name}", f"{params[name]} is pruned from this space (allowed: {list(allowed)})"
                )
        broken = fam.rule(params)
        if broken:
            raise InvalidArchitectureError(f"block {i} {block.type}", broken)
        prev = spec.blocks[i - 1].type if i else None
        conns = c.connections(stage, prev, block.type)
        if block.connection not in conns:
            raise InvalidArchitectureError(
                f"block {i} connection", f"{block.connection!r} is not allowed here (allowed: {', '.join(conns) or 'none'})"
            )

    # -- variation ----------------------------------------------------------------------------
    def mutate(self, spec: HybridArch, rng: np.random.Generator) -> HybridArch:
        """Changes one decision (a hyperparameter, a type, a connection, or inserts/removes a
        block); after 100 invalid tries, returns a fresh uniform sample."""
        for _ in range(100):
            child = self._mutate_once(spec, rng)
            if child != spec and self.contains(child):
                return child
        return self.sample(rng)

    def _random_block(self, t: str, rng: np.random.Generator) -> BlockSpec:
        combos = self.combos[t] or self._valid_combos_full(t)
        return BlockSpec(t, combos[int(rng.integers(len(combos)))], CONNECTIONS[int(rng.integers(len(CONNECTIONS)))])

    def _valid_combos_full(self, t: str) -> list[tuple[tuple[str, int], ...]]:
        return HybridSpace(HybridConstraints()).combos[t]

    def _mutate_once(self, spec: HybridArch, rng: np.random.Generator) -> HybridArch:
        blocks = list(spec.blocks)
        i = int(rng.integers(len(blocks)))
        kind = ("param", "type", "connection", "insert", "delete")[int(rng.integers(5))]
        b = blocks[i]
        if kind == "param":
            field = b.params[int(rng.integers(len(b.params)))][0]
            values = [v for v in self.constraints.values(b.type, field) if v != b.p[field]]
            if not values:
                return spec
            blocks[i] = BlockSpec.make(b.type, b.connection, **{**b.p, field: values[int(rng.integers(len(values)))]})
        elif kind == "type":
            others = [t for t in self.types if t != b.type]
            new = self._random_block(others[int(rng.integers(len(others)))], rng)
            blocks[i] = BlockSpec(new.type, new.params, b.connection)
        elif kind == "connection":
            blocks[i] = BlockSpec(b.type, b.params, CONNECTIONS[int(rng.integers(len(CONNECTIONS)))])
        elif kind == "insert":
            blocks.insert(int(rng.integers(len(blocks) + 1)), self._random_block(self.types[int(rng.integers(len(self.types)))], rng))
        elif len(blocks) > 1:
            del blocks[i]
        return HybridArch(tuple(blocks))

    def crossover(self, a: HybridArch, b: HybridArch, rng: np.random.Generator) -> HybridArch:
        """One-point crossover on the block lists (a's head, b's tail); falls back to a."""
        for _ in range(20):
            i = int(rng.integers(1, a.depth)) if a.depth > 1 else 1
            j = int(rng.integers(1, b.depth)) if b.depth > 1 else 1
            child = HybridArch(a.blocks[:i] + b.blocks[j:])
            if self.contains(child):
                return child
        return a

    # -- encoding -----------------------------------------------------------------------------
    def to_string(self, spec: HybridArch) -> str:
        return str(spec)

    def from_string(self, text: str) -> HybridArch:
        blocks = []
        for i, token in enumerate(t.strip() for t in text.split(">")):
            m = _TOKEN.match(token)
            if not m:
                raise InvalidArchitectureError(f"block {i}", f"cannot parse {token!r} (expected connection:type(field=value,...))")
            conn, t, inner = m.groups()
            try:
                params = {k: int(v) for k, v in (kv.split("=") for kv in inner.split(",") if kv)}
            except ValueError:
                raise InvalidArchitectureError(f"block {i}", f"malformed parameters {inner!r}") from None
            blocks.append(BlockSpec.make(t, conn, **params))
        spec = HybridArch(tuple(blocks))
        HybridSpace().validate(spec)
        return spec

    def code_cardinalities(self) -> tuple[int, ...]:
        return hybrid_code.cardinalities()

    def encode(self, spec: HybridArch) -> tuple[int, ...]:
        return hybrid_code.encode_blocks([(b.type, b.connection, b.params) for b in spec.blocks])

    def decode(self, code: Sequence[int]) -> HybridArch:
        spec = HybridArch(tuple(BlockSpec.make(t, conn, **params) for t, conn, params in hybrid_code.decode_blocks(code)))
        self.validate(spec)
        return spec

    def project(self, code: Sequence[int], rng: np.random.Generator) -> HybridArch:
        """Reads every non-empty slot leniently (digits modulo their range), clamps the depth,
        then moves each block to the nearest allowed choice; a fresh sample if rules still fail."""
        wanted = [(t, params, conn) for t, conn, params in hybrid_code.lenient_blocks(code)]
        c = self.constraints
        filler = self.sample(rng).blocks
        while len(wanted) < c.min_depth:
            b = filler[len(wanted) % len(filler)]
            wanted.append((b.type, b.p, b.connection))
        wanted = wanted[: c.max_depth]
        blocks: list[BlockSpec] = []
        for i, (t, params, conn) in enumerate(wanted):
            stage = stage_of(i, len(wanted))
            allowed = [x for x in c.types_at(stage) if self.combos[x]]
            if t not in allowed:
                t = allowed[int(rng.integers(len(allowed)))]
                params = {}
            best = max(self.combos[t], key=lambda combo: (sum(params.get(k) == v for k, v in combo), rng.random()))
            conns = c.connections(stage, blocks[-1].type if blocks else None, t) or CONNECTIONS
            blocks.append(BlockSpec(t, best, conn if conn in conns else conns[int(rng.integers(len(conns)))]))
        spec = HybridArch(tuple(blocks))
        return spec if self.contains(spec) else self.sample(rng)

    # -- models and text ------------------------------------------------------------------------
    def build_model(self, spec: HybridArch, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
        from nas_lib.space.builder import HybridNetwork

        HybridSpace().validate(spec)  # buildable = valid in the full space
        return HybridNetwork(spec, input_shape, num_classes)

    def state_key(self) -> str:
        return json.dumps(self.constraints.to_dict(), sort_keys=True)

    def spread_sample(self, k: int, rng: np.random.Generator) -> list[HybridArch]:
        """K depth-stratified draws (a uniform depth, then a uniform architecture of that depth):
        uniform draws are almost all of the maximal depth, which would hide the shallow nets."""
        depths = self.held_depths()
        return [self.sample(rng, depth=depths[int(rng.integers(len(depths)))]) for _ in range(k)]

    def describe(self) -> str:
        c = self.constraints
        lines = [f"hybrid space: {self.size():,} architectures (log10 {self.log10_size():.3f})", f"  depth: {c.min_depth}..{c.max_depth} blocks"]
        for stage in ("early", "mid", "late"):
            lines.append(f"  {stage}: types {', '.join(c.types_at(stage))}; connections {', '.join(c.stage_connections.get(stage, CONNECTIONS))}")
        for t in self.types:
            fields = "; ".join(f"{n} {list(c.values(t, n))}" for n in BLOCKS.get(t).field_names)
            lines.append(f"  {t} ({len(self.combos[t])} valid combinations): {fields}")
        for key, conns in c.pair_connections.items():
            lines.append(f"  pair {key}: {', '.join(conns)}")
        if c.forbidden_sequences:
            lines.append("  forbidden: " + "; ".join(" > ".join(s) for s in c.forbidden_sequences))
        if c.preferred_sequences:
            lines.append("  preferred: " + "; ".join(" > ".join(s) for s in c.preferred_sequences))
        for t, (lo, hi) in c.type_fractions.items():
            lines.append(f"  {t} share: {lo:.2f}..{hi:.2f}")
        return "\n".join(lines)


def _pick(weighted: Sequence[tuple[T, int]], r: int) -> T:
    """The item whose cumulative weight interval contains r."""
    for item, w in weighted:
        if r < w:
            return item
        r -= w
    raise AssertionError("r beyond the total weight")
