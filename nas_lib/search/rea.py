"""Regularized evolution (aging evolution).

Reference: E. Real, A. Aggarwal, Y. Huang and Q. V. Le, "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019, arXiv 1802.01548.

The population is a queue of the last `population` evaluated architectures. Each new candidate
is a one-decision mutation (`space.mutate`) of the winner of a tournament among `sample`
architectures drawn from the queue; when it is told, it joins the queue and the oldest member
dies (aging), whatever its fitness.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any

from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES


@dataclasses.dataclass(frozen=True)
class REAConfig:
    """Options of regularized evolution."""

    population: int = 10  # P; 10 with S=3 is the protocol that reaches ~94.2 on NB201 in 100 queries
    sample: int = 3  # S, the tournament size


@STRATEGIES.register("rea")
class RegularizedEvolution(Strategy):
    """Tournament selection, one-decision mutation, and removal of the oldest member."""

    name = "rea"
    Config = REAConfig
    warmup_option = "population"  # uniform samples until this many are evaluated

    def __init__(self, space: Any, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        if self.config.population < 1 or not 1 <= self.config.sample <= self.config.population:
            raise ValueError("rea needs population >= 1 and 1 <= sample <= population")
        self.population: deque[tuple[Spec, float]] = deque()

    def _propose(self, n: int) -> list[Spec]:
        return [self.fresh(self._one) for _ in range(n)]

    def _one(self) -> Spec:
        if len(self.population) < self.config.population:
            return self.space.sample(self.rng)  # initial population: uniform samples
        members = list(self.population)
        picks = self.rng.choice(len(members), size=self.config.sample, replace=False)
        parent = max((members[int(i)] for i in picks), key=lambda m: m[1])[0]
        return self.space.mutate(parent, self.rng)

    def _observe(self, specs: list[Spec], fitnesses: list[float], extra: list[Any] | None) -> None:
        for spec, fitness in zip(specs, fitnesses):
            if math.isnan(fitness):
                continue  # a failed model never reproduces
            self.population.append((spec, fitness))
            if len(self.population) > self.config.population:
                self.population.popleft()

    def _extra_state(self) -> dict[str, Any]:
        return {"population": [[self.space.to_string(s), f] for s, f in self.population]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.population = deque((self.space.from_string(s), float(f)) for s, f in state.get("population", []))
