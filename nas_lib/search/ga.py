"""Genetic algorithm with elitism and per-generation Shannon-entropy diversity.

Reference: the genetic search of S-NAS as described in the EHNAS issue (tournament selection,
crossover of compatible parents, mutation with per-field rates, elitism, Shannon entropy of the
population tracked per generation); the operators are the classic ones of D. E. Goldberg,
"Genetic Algorithms in Search, Optimization and Machine Learning", 1989, as used for NAS by
L. Xie and A. Yuille, "Genetic CNN", ICCV 2017, arXiv 1703.01513.

Generations are formed from results as they arrive: once `population - elites` children of the
current generation are told, the next generation is the `elites` best of all evaluated specs plus
the best of those children. Children are `space.crossover` of two tournament winners (with
probability `crossover_rate`; a child equal to a parent counts as an incompatible pair and is
mutated instead) followed by per-field mutation: each code digit is redrawn with its own rate
(default 1/length) and the code is projected back into the space; at least one decision changes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES


@dataclasses.dataclass(frozen=True)
class GAConfig:
    """Options of the genetic algorithm."""

    population: int = 20
    tournament: int = 3
    elites: int = 2  # carried unchanged into the next generation
    crossover_rate: float = 0.5
    mutation_rates: tuple[float, ...] | None = None  # per code digit; None = 1/len(code) each


def shannon_entropy(codes: np.ndarray, cards: np.ndarray) -> float:
    """Mean over code positions of the Shannon entropy (bits) of the digits in `codes`,
    normalised by log2 of the position's cardinality (0 = all identical, 1 = uniform)."""
    total, counted = 0.0, 0
    for i, card in enumerate(cards):
        if card < 2:
            continue
        p = np.bincount(codes[:, i], minlength=card) / len(codes)
        p = p[p > 0]
        total += float(-(p * np.log2(p)).sum() / math.log2(card))
        counted += 1
    return total / max(counted, 1)


@STRATEGIES.register("ga")
class GeneticAlgorithm(Strategy):
    """Generational GA: tournament, crossover, per-field mutation, elitism, entropy log."""

    name = "ga"
    Config = GAConfig
    warmup_option = "population"  # uniform samples until this many are evaluated

    def __init__(self, space: Any, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        c = self.config
        if c.population < 2 or not 1 <= c.tournament <= c.population or not 0 <= c.elites < c.population:
            raise ValueError("ga needs population >= 2, 1 <= tournament <= population, 0 <= elites < population")
        self.cards = np.array(space.code_cardinalities())
        rates = c.mutation_rates or (1.0 / len(self.cards),) * len(self.cards)
        if len(rates) != len(self.cards):
            raise ValueError(f"mutation_rates needs {len(self.cards)} entries (one per code digit)")
        self.rates = np.array(rates, dtype=float)
        self.generation: list[tuple[Spec, float]] = []  # the parents of the children being made
        self.children: list[tuple[Spec, float]] = []
        self.diversity: list[float] = []  # Shannon entropy of each generation

    def _propose(self, n: int) -> list[Spec]:
        if len(self.generation) < self.config.population:
            return [self.fresh(lambda: self.space.sample(self.rng)) for _ in range(n)]
        return [self.fresh(self._child) for _ in range(n)]

    def _select(self) -> Spec:
        picks = self.rng.choice(len(self.generation), size=self.config.tournament, replace=False)
        return max((self.generation[int(i)] for i in picks), key=lambda m: m[1])[0]

    def _child(self) -> Spec:
        a = self._select()
        child = a
        if self.rng.random() < self.config.crossover_rate:
            b = self._select()
            child = self.space.crossover(a, b, self.rng)
        return self._mutate(child)

    def _mutate(self, spec: Spec) -> Spec:
        code = np.array(self.space.encode(spec))
        flip = self.rng.random(len(code)) < self.rates
        for i in np.flatnonzero(flip):
            code[i] = int(self.rng.integers(self.cards[i]))
        child = self.space.project(code.tolist(), self.rng) if flip.any() else spec
        if self.space.to_string(child) == self.space.to_string(spec):
            child = self.space.mutate(spec, self.rng)  # every child differs from its parent
        return child

    def _observe(self, specs: list[Spec], fitnesses: list[float], extra: list[Any] | None) -> None:
        scored = [(s, f) for s, f in zip(specs, fitnesses) if not math.isnan(f)]
        c = self.config
        if len(self.generation) < c.population:
            self.generation.extend(scored)
            if len(self.generation) >= c.population:
                self.generation = sorted(self.generation, key=lambda m: -m[1])[: c.population]
                self._log_diversity()
            return
        self.children.extend(scored)
        if len(self.children) >= c.population - c.elites:
            elites = sorted(self.generation, key=lambda m: -m[1])[: c.elites]
            kids = sorted(self.children, key=lambda m: -m[1])[: c.population - c.elites]
            self.generation, self.children = elites + kids, []
            self._log_diversity()

    def _log_diversity(self) -> None:
        codes = np.array([self.space.encode(s) for s, _ in self.generation])
        self.diversity.append(shannon_entropy(codes, self.cards))

    def _extra_state(self) -> dict[str, Any]:
        dump = lambda items: [[self.space.to_string(s), f] for s, f in items]  # noqa: E731
        return {"generation": dump(self.generation), "children": dump(self.children), "diversity": self.diversity}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        load = lambda items: [(self.space.from_string(s), float(f)) for s, f in items]  # noqa: E731
        self.generation = load(state.get("generation", []))
        self.children = load(state.get("children", []))
        self.diversity = [float(v) for v in state.get("diversity", [])]
