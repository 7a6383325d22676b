"""EDNAG: evolution by fitness-guided denoising of relaxed one-hot operation matrices.

Reference: S. Zhou et al., "Evolution Meets Diffusion: Efficient Neural Architecture
Generation", 2025, arXiv 2504.17827 (building on Y. Zhang et al., "Diffusion Models are
Evolutionary Algorithms", 2024, arXiv 2410.02543).

Each architecture is a matrix with one row per code position (`space.code_cardinalities()`) and
a one-hot row over that position's digits, flattened and centred. A generation denoises fresh
Gaussian noise with a DDIM schedule in which the network of a diffusion model is replaced by the
population itself: at each step the estimate of the clean matrix is the average of the
population members weighted by (a) the probability their fitness earns (a softmax of normalised
fitness, the fitness-to-probability mapping) and (b) how likely the current noisy point came
from them. The final matrices are read by argmax per row, digits are mutated with a small rate,
and `space.project` turns each code into a valid spec; duplicates are replaced (diversity
retention). The next population keeps the `elites` best members and the best of the new ones.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES


@dataclasses.dataclass(frozen=True)
class EDNAGConfig:
    """Options of EDNAG."""

    population: int = 20
    steps: int = 10  # DDIM denoising steps per generation
    temperature: float = 0.1  # of the fitness-to-probability softmax on fitness scaled to [0, 1]
    elites: int = 4
    mutation_rate: float | None = None  # per code digit; None = 1/len(code)
    eta: float = 0.5  # DDIM stochasticity (0 = deterministic DDIM)


def ddim_alpha_bars(steps: int) -> np.ndarray:
    """Cumulative signal levels alpha_bar_t for t = 0..steps (cosine schedule, t=0 clean)."""
    t = np.linspace(0.0, 1.0, steps + 1)
    return np.clip(np.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2, 1e-4, 0.9999)


@STRATEGIES.register("ednag")
class EDNAG(Strategy):
    """Population-guided DDIM denoising generator with elitism and mutation."""

    name = "ednag"
    Config = EDNAGConfig
    warmup_option = "population"  # uniform samples until this many are evaluated

    def __init__(self, space: Any, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        c = self.config
        if c.population < 2 or not 0 <= c.elites < c.population or c.steps < 1 or c.temperature <= 0:
            raise ValueError("ednag needs population >= 2, 0 <= elites < population, steps >= 1, temperature > 0")
        self.cards = np.array(space.code_cardinalities())
        self.width = int(self.cards.max())
        self.rate = c.mutation_rate if c.mutation_rate is not None else 1.0 / len(self.cards)
        self.population: list[tuple[Spec, float]] = []
        self.offspring: list[tuple[Spec, float]] = []
        self.queue: list[Spec] = []  # generated, not yet asked

    # -- generation --------------------------------------------------------------------------
    def _matrices(self, specs: list[Spec]) -> np.ndarray:
        """Centred one-hot matrices, flattened: +1 on the chosen digit, -1 elsewhere, 0 on padding."""
        codes = np.array([self.space.encode(s) for s in specs])
        mats = -np.ones((len(specs), len(self.cards), self.width))
        mats[:, np.arange(self.width)[None, :] >= self.cards[:, None]] = 0.0
        rows = np.arange(len(self.cards))
        for k, code in enumerate(codes):
            mats[k, rows, code] = 1.0
        return mats.reshape(len(specs), -1)

    def _fitness_probabilities(self) -> np.ndarray:
        f = np.array([m[1] for m in self.population])
        span = f.max() - f.min()
        z = (f - f.min()) / span if span > 0 else np.zeros_like(f)
        w = np.exp((z - 1.0) / self.config.temperature)
        return w / w.sum()

    def _denoise(self, count: int) -> np.ndarray:
        x0 = self._matrices([m[0] for m in self.population])
        log_p = np.log(self._fitness_probabilities())
        ab = ddim_alpha_bars(self.config.steps)
        x = self.rng.standard_normal((count, x0.shape[1]))
        for t in range(self.config.steps, 0, -1):
            # Posterior over population members given the noisy point, times their fitness weight.
            d2 = ((x[:, None, :] - math.sqrt(ab[t]) * x0[None, :, :]) ** 2).sum(axis=2)
            logits = log_p[None, :] - d2 / (2.0 * (1.0 - ab[t]))
            w = np.exp(logits - logits.max(axis=1, keepdims=True))
            x0_hat = (w / w.sum(axis=1, keepdims=True)) @ x0
            eps = (x - math.sqrt(ab[t]) * x0_hat) / math.sqrt(1.0 - ab[t])
            sigma = self.config.eta * math.sqrt((1 - ab[t - 1]) / (1 - ab[t]) * (1 - ab[t] / ab[t - 1]))
            x = math.sqrt(ab[t - 1]) * x0_hat + math.sqrt(max(1 - ab[t - 1] - sigma**2, 0.0)) * eps
            x = x + sigma * self.rng.standard_normal(x.shape)
        return x

    def _decode(self, x: np.ndarray) -> Spec:
        mat = x.reshape(len(self.cards), self.width).copy()
        mat[np.arange(self.width)[None, :] >= self.cards[:, None]] = -np.inf
        code = mat.argmax(axis=1)
        flip = self.rng.random(len(code)) < self.rate
        for i in np.flatnonzero(flip):
            code[i] = int(self.rng.integers(self.cards[i]))
        return self.space.project(code.tolist(), self.rng)

    def _generate(self) -> None:
        samples = self._denoise(self.config.population)
        for x in samples:
            spec = self._decode(x)
            self.queue.append(spec)

    def _next(self) -> Spec:
        if len(self.population) < self.config.population:
            return self.space.sample(self.rng)
        if not self.queue:
            self._generate()
        spec = self.queue.pop(0)
        if self.is_seen(spec):  # diversity retention: a repeat becomes a mutant of itself
            spec = self.space.mutate(spec, self.rng)
        return spec

    def _propose(self, n: int) -> list[Spec]:
        return [self.fresh(self._next) for _ in range(n)]

    # -- selection ---------------------------------------------------------------------------
    def _observe(self, specs: list[Spec], fitnesses: list[float], extra: list[Any] | None) -> None:
        scored = [(s, f) for s, f in zip(specs, fitnesses) if not math.isnan(f)]
        c = self.config
        if len(self.population) < c.population:
            self.population.extend(scored)
            return
        self.offspring.extend(scored)
        if len(self.offspring) >= c.population - c.elites:
            elites = sorted(self.population, key=lambda m: -m[1])[: c.elites]
            kids = sorted(self.offspring, key=lambda m: -m[1])[: c.population - c.elites]
            self.population, self.offspring, self.queue = elites + kids, [], []

    def _extra_state(self) -> dict[str, Any]:
        dump = lambda items: [[self.space.to_string(s), f] for s, f in items]  # noqa: E731
        return {"population": dump(self.population), "offspring": dump(self.offspring), "queue": [self.space.to_string(s) for s in self.queue]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        load = lambda items: [(self.space.from_string(s), float(f)) for s, f in items]  # noqa: E731
        self.population = load(state.get("population", []))
        self.offspring = load(state.get("offspring", []))
        self.queue = [self.space.from_string(s) for s in state.get("queue", [])]
