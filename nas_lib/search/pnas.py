"""Progressive neural architecture search: a beam that grows architectures one unit at a time.

Reference: C. Liu, B. Zoph, M. Neumann, J. Shlens, W. Hua, L.-J. Li, L. Fei-Fei, A. Yuille,
J. Huang and K. Murphy, "Progressive Neural Architecture Search", ECCV 2018, arXiv 1712.00559.

Architectures are searched in order of complexity (their number of "units"). Level 1 is a set of
the simplest architectures of the space, asked without ranking (nothing is known yet). Level b+1
expands each of the best `beam` (K) evaluated members of level b by exactly one unit; a
predictor refitted on everything evaluated so far ranks the unseen expansions and only its top K
are asked. The paper trains an MLP/RNN ensemble on the cell's tokens; here the predictor is one
of `predictors.py` (``ridge``: a bootstrap ensemble of ridge regressions on one-hot and pairwise
code features, or ``trees``: extremely randomised trees).

What a unit is (`complexity` option):
- ``digits``: the number of code digits that differ from the space's simplest code (at each
  position, the smallest digit a spread sample of the space uses). On the full NB201 space digit 0
  is ``none``, so this counts the edges whose operation is not ``none``: level 1 is the 24 cells
  with one non-``none`` edge (the all-``none`` cell, zero units, computes nothing and is not a
  level). On a restricted NB201 space it counts edges that differ from their simplest allowed
  operation. An expansion changes one digit that still equals the simplest code's.
- ``depth``: the number of blocks (the hybrid space). Level 1 is the shallowest architectures
  of a depth-stratified `spread_sample` of `expansions` draws; an expansion is a `space.mutate`
  that inserts one block.
- ``auto`` (default): ``depth`` when the space's specs have a ``depth``, else ``digits``.

When the top K have no unseen expansion left (the most complex level is done, or the space is
nearly spent), the expansions of the best K evaluated architectures of any level are ranked
instead, then a predictor-ranked pool of mutations and uniform samples
(`predictors.candidate_pool`), then uniform samples, so `ask` keeps returning unseen
architectures while the space has them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from nas_lib.search.base import Spec, Strategy
from nas_lib.search.predictors import PREDICTORS, CodeFeatures, candidate_pool, code_neighbours, fit_predictor
from nas_lib.search.registry import STRATEGIES
from nas_lib.space.base import InvalidArchitectureError, SearchSpace

COMPLEXITIES = ("auto", "digits", "depth")
REFERENCE_DRAWS = 256  # spread samples that fix the simplest code (a fixed seed: the same every run)


@dataclasses.dataclass(frozen=True)
class PNASConfig:
    """Options of progressive search."""

    beam: int = 10  # K: architectures asked per level after level 1 (the paper: 256 of ~10^12)
    expansions: int = 200  # cap on the candidates the predictor ranks per level
    level1: int = 24  # cap on level 1; NB201 has exactly 24 one-edge cells, all of them asked
    model: str = "ridge"  # predictor of predictors.py: "ridge" or "trees"
    complexity: str = "auto"  # what a unit is: "auto", "digits" or "depth" (see the module doc)

    def __post_init__(self) -> None:
        if self.beam < 1 or self.expansions < 1 or self.level1 < 1:
            raise ValueError("pnas needs beam, expansions and level1 >= 1")
        if self.model not in PREDICTORS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(sorted(PREDICTORS))}")
        if self.complexity not in COMPLEXITIES:
            raise ValueError(f"unknown complexity {self.complexity!r}; known: {', '.join(COMPLEXITIES)}")


class DigitUnits:
    """Units = code digits that differ from the space's simplest code."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        codes = np.array([space.encode(s) for s in space.spread_sample(REFERENCE_DRAWS, np.random.default_rng(0))])
        self.reference = tuple(int(d) for d in codes.min(axis=0))

    def __call__(self, spec: Spec) -> int:
        return sum(int(a != b) for a, b in zip(self.space.encode(spec), self.reference))

    def simplest(self, rng: np.random.Generator, draws: int) -> list[Spec]:
        """The valid specs one digit away from the simplest code (or its projection)."""
        try:
            root = self.space.decode(self.reference)
        except InvalidArchitectureError:
            root = self.space.project(self.reference, rng)
        return [root, *code_neighbours(self.space, root)]

    def expand(self, spec: Spec, rng: np.random.Generator, cap: int) -> list[Spec]:
        """Every valid spec that changes one digit of `spec` still equal to the simplest code's."""
        units = self(spec)
        return [s for s in code_neighbours(self.space, spec) if self(s) == units + 1]


class DepthUnits:
    """Units = blocks (`spec.depth`)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, spec: Spec) -> int:
        return int(spec.depth)  # type: ignore[attr-defined]

    def simplest(self, rng: np.random.Generator, draws: int) -> list[Spec]:
        """A depth-stratified sample: the shallowest of its draws are level 1."""
        return list(self.space.spread_sample(draws, rng))

    def expand(self, spec: Spec, rng: np.random.Generator, cap: int) -> list[Spec]:
        """Distinct mutations of `spec` that insert one block (about a quarter of mutations do)."""
        found: dict[str, Spec] = {}
        for _ in range(4 * cap):
            child = self.space.mutate(spec, rng)
            if child.depth == spec.depth + 1:  # type: ignore[attr-defined]
                found.setdefault(self.space.to_string(child), child)
                if len(found) >= cap:
                    break
        return list(found.values())


def unit_rule(space: SearchSpace, complexity: str) -> DigitUnits | DepthUnits:
    """The unit counter named by `complexity` ("auto": depth when specs have one)."""
    if complexity == "auto":
        complexity = "depth" if hasattr(space.sample(np.random.default_rng(0)), "depth") else "digits"
    return DepthUnits(space) if complexity == "depth" else DigitUnits(space)


@STRATEGIES.register("pnas")
class ProgressiveSearch(Strategy):
    """Level by level: expand the best K by one unit, ask the K expansions the predictor ranks best."""

    name = "pnas"
    Config: ClassVar[type] = PNASConfig

    def __init__(self, space: Any, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.units = unit_rule(space, self.config.complexity)
        self.features = CodeFeatures(space)
        self.level = 0  # the level being asked; 0 before the first ask
        self.queue: list[str] = []  # chosen members of the current level not asked yet
        self.members: list[str] = []  # every member of the current level

    def _propose(self, n: int) -> list[Spec]:
        out: list[Spec] = []
        while len(out) < n:
            if not self.queue:
                self.queue = self._next_level()
                self.members = list(self.queue)
            spec = self.space.from_string(self.queue.pop(0)) if self.queue else self.fresh(lambda: self.space.sample(self.rng))
            if self.is_seen(spec) and not self.exhausted():
                continue
            self._seen.add(self.space.to_string(spec))
            out.append(spec)
        return out

    # -- levels -----------------------------------------------------------------------------------
    def _next_level(self) -> list[str]:
        """The members of the next level, as canonical strings, in asking order."""
        self.level += 1
        if self.level == 1:
            return self._level_one()
        candidates = self._expansions(self._top(self.members))
        if not candidates:  # the beam is spent: grow the best of any level instead
            candidates = self._expansions(self._top(None))
        if not candidates:
            candidates = candidate_pool(self, self.config.expansions, self.config.beam)
        return [self.space.to_string(s) for s in self._rank(candidates)[: self.config.beam]]

    def _level_one(self) -> list[str]:
        """Up to `level1` unseen specs of the smallest positive unit count, in random order."""
        pool = {self.space.to_string(s): s for s in self.units.simplest(self.rng, self.config.expansions) if not self.is_seen(s)}
        counts = {key: self.units(s) for key, s in pool.items()}
        if not any(counts.values()):
            return []
        least = min(c for c in counts.values() if c > 0)
        keys = [key for key, c in counts.items() if c == least]
        order = self.rng.permutation(len(keys))[: self.config.level1]
        return [keys[int(i)] for i in order]

    def _top(self, members: Sequence[str] | None) -> list[Spec]:
        """The best `beam` evaluated specs among `members` (None: among everything evaluated)."""
        allowed = None if members is None else set(members)
        scored = [(s, f) for s, f in self.scored_history() if allowed is None or self.space.to_string(s) in allowed]
        scored.sort(key=lambda item: -item[1])  # stable: ties keep the order of evaluation
        return [s for s, _ in scored[: self.config.beam]]

    def _expansions(self, parents: list[Spec]) -> list[Spec]:
        """Unseen one-unit expansions of `parents`, at most `expansions` of them."""
        per_parent = max(1, math.ceil(self.config.expansions / max(1, len(parents))))
        found: dict[str, Spec] = {}
        for parent in parents:
            for child in self.units.expand(parent, self.rng, per_parent):
                key = self.space.to_string(child)
                if key not in found and not self.is_seen(child):
                    found[key] = child
        specs = list(found.values())
        if len(specs) > self.config.expansions:
            keep = np.sort(self.rng.choice(len(specs), size=self.config.expansions, replace=False))
            specs = [specs[int(i)] for i in keep]
        return specs

    def _rank(self, candidates: list[Spec]) -> list[Spec]:
        """`candidates` by predicted fitness, best first (random order before any result)."""
        scored = self.scored_history()
        if not scored:
            return [candidates[int(i)] for i in self.rng.permutation(len(candidates))]
        x = self.features([s for s, _ in scored])
        y = np.array([f for _, f in scored], dtype=float)
        mean, _ = fit_predictor(self.config.model, x, y, self.rng).predict(self.features(candidates))
        return [candidates[int(i)] for i in np.argsort(-mean, kind="stable")]

    # -- state ------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {"level": self.level, "queue": list(self.queue), "members": list(self.members)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.level = int(state.get("level", 0))
        self.queue = list(state.get("queue", []))
        self.members = list(state.get("members", []))
