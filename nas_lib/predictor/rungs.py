"""The learned predictor over a run's training rungs: the search fitness of multi-fidelity runs.

With successive halving, most architectures stop at a low rung. Their "score at the highest rung
reached" is an epoch-1 accuracy set beside other architectures' epoch-9 accuracies: two scales in
one ranking. Here an architecture that reached the top rung keeps its trained score, and every
other one gets the predictor's estimate of its top-rung score, from what the run knows about it
(its code and summary, its proxy scores and the rung scores it has), fitted on the architectures
the run trained to the top. Until `min_rows` of those exist, the highest-rung score answers.

What an architecture knows is kept as JSON-friendly values (the search state stores it)::

    known = {arch: {"proxies": {"params": 0.31}, "rungs": {"1": 0.42, "3": 0.55}}, ...}
    rung_fitness(space, known, budgets=[1, 3, 9], config=PredictorConfig(), min_rows=6)
    # -> {arch: (fitness, "trained" | "predicted" | "highest rung" | "none")}

The curve the predictor reads is the rung scores from the lowest budget up, as far as they are
contiguous: an architecture that entered at budget 3 (a later Hyperband bracket) has no epoch-1
score, so its curve is empty and the proxies and code alone predict it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nas_lib.predictor.features import Observation
from nas_lib.predictor.learned import MIN_ROWS, LearnedPredictor, PredictorConfig
from nas_lib.space.base import SearchSpace

Known = Mapping[str, Mapping[str, Any]]  # arch -> {"proxies": {name: value}, "rungs": {budget: value}}


def rung_curve(rungs: Mapping[Any, float], budgets: Sequence[int]) -> list[float]:
    """The scores of the contiguous rungs from the lowest budget up (the top budget left out)."""
    curve: list[float] = []
    for budget in budgets[:-1]:
        value = rungs.get(str(budget), rungs.get(budget))
        if value is None or not math.isfinite(value):
            break
        curve.append(float(value))
    return curve


def _top(rungs: Mapping[Any, float], budgets: Sequence[int]) -> float | None:
    value = rungs.get(str(budgets[-1]), rungs.get(budgets[-1]))
    return float(value) if value is not None and math.isfinite(value) else None


def _highest(rungs: Mapping[Any, float], budgets: Sequence[int]) -> float | None:
    for budget in reversed(budgets):
        value = rungs.get(str(budget), rungs.get(budget))
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def rung_fitness(
    space: SearchSpace, known: Known, budgets: Sequence[int], config: PredictorConfig | None = None, min_rows: int = MIN_ROWS
) -> dict[str, tuple[float, str]]:
    """Each architecture's fitness and where it came from: ``trained`` (its top-rung score),
    ``predicted`` (the predictor's estimate of it), ``highest rung`` (fewer than `min_rows`
    architectures reached the top, so the score at its highest rung) or ``none`` (NaN: no rung
    was scored)."""
    specs = {arch: space.from_string(arch) for arch in known}
    trained, queries = [], []
    for arch, facts in known.items():
        rungs, proxies = facts.get("rungs", {}), dict(facts.get("proxies", {}))
        top = _top(rungs, budgets)
        if top is not None:
            trained.append(Observation(specs[arch], proxies, tuple(rung_curve(rungs, budgets)), top))
        elif _highest(rungs, budgets) is not None:
            queries.append((arch, Observation(specs[arch], proxies, tuple(rung_curve(rungs, budgets)))))
    predicted: dict[str, float] = {}
    if queries and len(trained) >= max(min_rows, MIN_ROWS):
        mean = LearnedPredictor(space, config).fit(trained).score([q for _, q in queries])
        predicted = {arch: float(m) for (arch, _), m in zip(queries, mean) if math.isfinite(m)}
    out: dict[str, tuple[float, str]] = {}
    for arch, facts in known.items():
        rungs = facts.get("rungs", {})
        top, highest = _top(rungs, budgets), _highest(rungs, budgets)
        if top is not None:
            out[arch] = (top, "trained")
        elif arch in predicted:
            out[arch] = (predicted[arch], "predicted")
        elif highest is not None:
            out[arch] = (highest, "highest rung")
        else:
            out[arch] = (math.nan, "none")
    return out
