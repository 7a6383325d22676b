"""NSGA-II: multi-objective search (fitness up, cost down) that returns a Pareto front.

Reference: K. Deb, A. Pratap, S. Agarwal and T. Meyarivan, "A Fast and Elitist Multiobjective
Genetic Algorithm: NSGA-II", IEEE TEVC 2002 (no arXiv); for NAS: Z. Lu et al., "NSGA-Net:
Neural Architecture Search using Multi-Objective Genetic Algorithm", GECCO 2019, arXiv 1810.03522.

Objectives: maximise the told fitness (accuracy or a proxy score) and minimise a cost. The cost
comes from one of (option ``cost``):
- ``"params"`` (default): trainable parameters of `space.build_model(spec)`, computed here once
  per spec;
- ``"flops"``: multiply-accumulates for a 3x32x32 input (`nas_lib.space.stats.count_flops`);
- ``"extra"``: the caller passes it: ``tell(specs, fitnesses, extra=[cost, ...])`` (e.g. a
  measured latency); a spec told without it gets cost +inf.
Survivors are chosen by non-dominated rank, then crowding distance; parents by binary
tournament on (rank, crowding); children by crossover and one-decision mutation.
`pareto_front()` lists the non-dominated evaluated specs; `best()` is the front's most accurate
point (the front itself is the answer of a multi-objective search).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES


@dataclasses.dataclass(frozen=True)
class NSGA2Config:
    """Options of NSGA-II."""

    population: int = 20
    cost: str = "params"  # "params", "flops" or "extra" (see the module docstring)
    crossover_rate: float = 0.5


def non_dominated_ranks(objectives: np.ndarray) -> np.ndarray:
    """Pareto rank (0 = front) of each row; every column is minimised."""
    n = len(objectives)
    ranks = np.full(n, -1)
    remaining = np.arange(n)
    rank = 0
    while remaining.size:
        sub = objectives[remaining]
        dominated = np.array([np.any(np.all(sub <= row, axis=1) & np.any(sub < row, axis=1)) for row in sub])
        ranks[remaining[~dominated]] = rank
        remaining = remaining[dominated]
        rank += 1
    return ranks


def crowding_distance(objectives: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within one front (boundary points get inf)."""
    n, m = objectives.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(objectives[:, j], kind="stable")
        span = objectives[order[-1], j] - objectives[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0 and np.isfinite(span):
            dist[order[1:-1]] += (objectives[order[2:], j] - objectives[order[:-2], j]) / span
    return dist


@STRATEGIES.register("nsga2")
class NSGA2(Strategy):
    """Elitist non-dominated sorting GA on (fitness, cost)."""

    name = "nsga2"
    Config = NSGA2Config
    warmup_option = "population"  # uniform samples until this many are evaluated

    def __init__(self, space: Any, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        if self.config.cost not in ("params", "flops", "extra"):
            raise ValueError(f"nsga2 cost must be params, flops or extra, got {self.config.cost!r}")
        self.costs: dict[str, float] = {}  # spec string -> cost
        self.parents: list[tuple[Spec, float, float, float]] = []  # spec, fitness, rank, crowding

    # -- objectives --------------------------------------------------------------------------
    def cost_of(self, spec: Spec) -> float:
        """The cost objective of `spec` (computed once and remembered)."""
        key = self.space.to_string(spec)
        if key not in self.costs:
            self.costs[key] = self._compute_cost(spec)
        return self.costs[key]

    def _compute_cost(self, spec: Spec) -> float:
        from nas_lib.space.stats import count_flops, count_parameters

        if self.config.cost == "extra":
            return math.inf
        model = self.space.build_model(spec)
        if self.config.cost == "params":
            return float(count_parameters(model))
        return float(count_flops(model, (3, 32, 32)))

    def _objectives(self, items: list[tuple[Spec, float]]) -> np.ndarray:
        return np.array([[-f, self.cost_of(s)] for s, f in items], dtype=float).reshape(len(items), 2)

    def pareto_front(self) -> list[tuple[Spec, tuple[float, float]]]:
        """Non-dominated evaluated specs with their (fitness, cost), most accurate first."""
        items = self.scored_history()
        if not items:
            return []
        ranks = non_dominated_ranks(self._objectives(items))
        front = [(s, (f, self.cost_of(s))) for (s, f), r in zip(items, ranks) if r == 0]
        unique = {self.space.to_string(s): (s, o) for s, o in front}
        return sorted(unique.values(), key=lambda t: -t[1][0])

    def front(self) -> list[dict[str, Any]]:
        """`pareto_front` as rows (what a run saves and plots)."""
        return [
            {"arch": self.space.to_string(s), "arch_id": self.space.arch_id(s), "fitness": f, "cost": c, "cost_name": self.config.cost}
            for s, (f, c) in self.pareto_front()
        ]

    def best(self) -> tuple[Spec, float]:
        front = self.pareto_front()
        if not front:
            raise RuntimeError("nsga2 has no successful evaluation yet")
        spec, (fitness, _) = front[0]
        return spec, fitness

    # -- evolution ---------------------------------------------------------------------------
    def _propose(self, n: int) -> list[Spec]:
        if len(self.parents) < 2:
            return [self.fresh(lambda: self.space.sample(self.rng)) for _ in range(n)]
        return [self.fresh(self._child) for _ in range(n)]

    def _tournament(self) -> Spec:
        i, j = (int(k) for k in self.rng.choice(len(self.parents), size=2, replace=False))
        a, b = self.parents[i], self.parents[j]
        return (a if (a[2], -a[3]) <= (b[2], -b[3]) else b)[0]

    def _child(self) -> Spec:
        a = self._tournament()
        child = self.space.crossover(a, self._tournament(), self.rng) if self.rng.random() < self.config.crossover_rate else a
        return self.space.mutate(child, self.rng)

    def _observe(self, specs: list[Spec], fitnesses: list[float], extra: list[Any] | None) -> None:
        if extra is not None and self.config.cost == "extra":
            for spec, cost in zip(specs, extra):
                self.costs[self.space.to_string(spec)] = float(cost)
        self._select_survivors()

    def _select_survivors(self) -> None:
        """Parents = the best `population` of all evaluated specs by (rank, crowding)."""
        items = list({self.space.to_string(s): (s, f) for s, f in self.scored_history()}.values())
        if not items:
            return
        objs = self._objectives(items)
        ranks = non_dominated_ranks(objs)
        crowd = np.zeros(len(items))
        for r in np.unique(ranks):
            idx = np.flatnonzero(ranks == r)
            crowd[idx] = crowding_distance(objs[idx])
        order = sorted(range(len(items)), key=lambda k: (ranks[k], -crowd[k]))[: self.config.population]
        self.parents = [(items[k][0], items[k][1], float(ranks[k]), float(crowd[k])) for k in order]

    def _extra_state(self) -> dict[str, Any]:
        return {"costs": {k: (None if math.isinf(v) else v) for k, v in self.costs.items()}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.costs = {k: (math.inf if v is None else float(v)) for k, v in state.get("costs", {}).items()}
        self._select_survivors()
