"""A learned performance predictor: a surrogate of an architecture's trained score.

Issue #25 item 3. It reads what a run knows about an architecture (its code, a summary of it,
zero-cost proxy scores and the first epochs of its learning curve) and is refitted on the
architectures the run has trained. Usage::

    from nas_lib.predictor import LearnedPredictor, Observation, PredictorConfig

    predictor = LearnedPredictor(space, PredictorConfig(model="forest"))
    predictor.fit([Observation(spec, {"params": 0.12, "flops": 20.1}, curve=[0.41, 0.55, ...], target=0.71), ...])
    prediction = predictor.predict([Observation(other, {"params": 0.3}), Observation(third, curve=[0.38])])
    prediction.mean, prediction.spread       # NaN while fewer than 3 rows are known

    fitness = PredictedFitness(predictor, proxies=lambda spec: {...})   # spec -> float, for any strategy
    fitness.tell(spec, target, curve=history)                           # refits on the next call

Parts: `features` (what a row reads; `SUMMARIES` registry of per-space aggregates, the hybrid's
in `hybrid_summary`), `models` (`MODELS` registry: ``gbt``, ``forest``, ``ridge``, ``gp``),
`learned` (`LearnedPredictor`, one model per known curve length), `fitness` (the adapter that
makes it the fitness of any search strategy) and `table` (observations from a ground-truth table
of `ehnas bench train`). Measured in docs/predictor.md (`benchmarks/predictor.py`).

References: C. White, A. Zela, B. Ru, Y. Liu, F. Hutter, "How Powerful are Performance
Predictors in Neural Architecture Search?", NeurIPS 2021, arXiv 2104.01177 (model-based
predictors over encodings, zero-cost proxies and learning-curve features, and their
combinations, compared by rank correlation against the number of training rows).
"""

from __future__ import annotations

from nas_lib.predictor import hybrid_summary  # noqa: F401  (registers the hybrid summary)
from nas_lib.predictor.features import SUMMARIES, FeatureBuilder, Observation
from nas_lib.predictor.fitness import PredictedFitness
from nas_lib.predictor.learned import LearnedPredictor, Prediction, PredictorConfig
from nas_lib.predictor.models import MODELS

__all__ = ["MODELS", "SUMMARIES", "FeatureBuilder", "LearnedPredictor", "Observation", "PredictedFitness", "Prediction", "PredictorConfig"]
