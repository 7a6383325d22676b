"""The learned predictor as the fitness of any search strategy: ``spec -> float``.

`PredictedFitness` is a callable of one spec, like `nas_lib.bench.search.TableFitness` and
`ProxyFitness`, so it drops in wherever a strategy's fitness is computed. It gathers what is
known about each architecture (proxy scores from `proxies`, computed once per architecture;
partial curves given to `observe_curve`) and asks the predictor, which it refits after every
`tell` of a trained result. A strategy then ranks the untrained by the predicted trained score
instead of by one proxy::

    fitness = PredictedFitness(LearnedPredictor(space), proxies=lambda spec: {"params": ..., "flops": ...})
    for spec, accuracy, history in trained:          # what the run has trained so far
        fitness.tell(spec, accuracy, curve=history)
    strategy.tell(specs, [fitness(s) for s in specs])

Until the predictor holds `min_rows` trained rows, `fallback` (e.g. the ``params`` proxy)
answers, or NaN without one; its values are on another scale than the predicted
accuracies, so a strategy should not mix the two phases in one history (start it once enough
rows are trained, or rescore its history).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas_lib.predictor.features import Observation
from nas_lib.predictor.learned import MIN_ROWS, LearnedPredictor


@dataclass
class PredictedFitness:
    """Fitness = the learned predictor's mean (+ `kappa` x its spread) for a spec.

    Attributes:
        predictor: the predictor to fit and ask.
        proxies: spec -> its zero-cost proxy scores (called once per architecture; None: none).
        fallback: spec -> fitness while too few trained rows exist (None: NaN).
        kappa: weight of the members' spread (optimism; 0 = the mean alone).
        min_rows: trained rows before the predictor answers instead of `fallback` (on the MNIST
            table the predictor overtakes params alone between 40 and 80 rows: docs/predictor.md).
    """

    predictor: LearnedPredictor
    proxies: Callable[[Any], Mapping[str, float]] | None = None
    fallback: Callable[[Any], float] | None = None
    kappa: float = 0.0
    min_rows: int = MIN_ROWS
    known: dict[str, Observation] = field(default_factory=dict)
    trained: dict[str, float] = field(default_factory=dict)

    def __call__(self, spec: Any) -> float:
        return float(self.score([spec])[0])

    def score(self, specs: Sequence[Any]) -> np.ndarray:
        """The fitness of several specs at once (one model call per curve length); a trained
        spec's fitness is its trained score."""
        if len(self.predictor.rows) < max(self.min_rows, MIN_ROWS):
            out = np.array([self.fallback(s) if self.fallback else math.nan for s in specs], dtype=np.float64)
        else:
            prediction = self.predictor.predict([self.observation(s) for s in specs])
            out = prediction.mean + self.kappa * prediction.spread
        keys = [self.predictor.space.to_string(s) for s in specs]
        return np.array([self.trained.get(k, v) for k, v in zip(keys, out)], dtype=np.float64)

    def observation(self, spec: Any) -> Observation:
        """What is known about `spec` (its proxies scored on first sight)."""
        key = self.predictor.space.to_string(spec)
        if key not in self.known:
            self.known[key] = Observation(spec, dict(self.proxies(spec)) if self.proxies else {})
        return self.known[key]

    def observe_curve(self, spec: Any, curve: Sequence[float]) -> None:
        """Records the first epochs of a training still under way (or stopped early)."""
        current = self.observation(spec)
        self.known[self.predictor.space.to_string(spec)] = Observation(spec, current.proxies, tuple(curve))

    def tell(self, spec: Any, target: float, curve: Sequence[float] = (), proxies: Mapping[str, float] | None = None) -> None:
        """Adds a trained result (its score, its per-epoch curve); the predictor refits on the
        next call. `proxies` overrides the scores `proxies` would compute."""
        scores = dict(proxies) if proxies is not None else dict(self.observation(spec).proxies)
        row = Observation(spec, scores, tuple(curve), float(target))
        key = self.predictor.space.to_string(spec)
        self.known[key] = Observation(spec, scores, tuple(curve))
        self.trained[key] = float(target)
        self.predictor.add([row])
