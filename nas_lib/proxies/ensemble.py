"""Ensemble: a weighted rank aggregation of other proxies.

Rank aggregation of zero-cost proxies follows Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021, arXiv 2101.08134 (voting) and Krishnakumar et al., "NAS-Bench-Suite-
Zero", NeurIPS 2022, arXiv 2210.03230 (complementary proxies). A single architecture has no rank
of its own, so each member's score is mapped to its percentile in a stored reference
distribution (the quantiles of that member on NB201 CIFAR-10 cells), and the ensemble score is
the weighted mean of the percentiles: within any population it orders architectures like a
weighted sum of member ranks.

`WEIGHTS` and `QUANTILES` are constants fitted on the NB201 CIFAR-10 table only, by
`nas_lib.bench.proxies.fit_ensemble` (run by `benchmarks/fit_ensemble.py`): members' scores of
the cells in the fitting file (see `FIT_NOTE`), weights chosen to maximise the Spearman
correlation with `cifar10_test_acc` on a fitting half of those cells. On other spaces the
percentiles saturate outside the NB201 range; the ordering stays monotone in every member.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.base import PROXIES

# --- fitted constants (regenerate with benchmarks/fit_ensemble.py; do not edit by hand) -----
FIT_NOTE = "placeholder: equal weights on nwot and synflow, quantiles not yet fitted"
WEIGHTS: dict[str, float] = {"nwot": 0.5, "synflow": 0.5}
QUANTILES: dict[str, list[float]] = {}
# --------------------------------------------------------------------------------------------


def percentile(name: str, value: float, quantiles: Mapping[str, list[float]] | None = None) -> float:
    """Where `value` falls in the stored distribution of member `name`, in [0, 1]."""
    q = (QUANTILES if quantiles is None else quantiles).get(name)
    if not q:
        return float(np.arctan(value) / np.pi + 0.5)  # unfitted member: any monotone squashing
    value = float(np.clip(value, q[0], q[-1]))
    return float(np.interp(value, q, np.linspace(0.0, 1.0, len(q))))


def combine(values: Mapping[str, float], weights: Mapping[str, float] | None = None,
            quantiles: Mapping[str, list[float]] | None = None) -> float:
    """The ensemble score of member values (each oriented so that higher is better).

    Raises:
        KeyError: if a weighted member is missing from `values`.
    """
    weights = WEIGHTS if weights is None else weights
    total = sum(weights.values())
    score = 0.0
    for name, w in weights.items():
        v = float(values[name])
        if not PROXIES.get(name).higher_is_better:
            v = -v
        score += w * percentile(name, v, quantiles)
    return score / total


@register_proxy
class Ensemble(Proxy):
    """Weighted mean of member percentiles (higher is better)."""

    name = "ensemble"
    version = "1"
    higher_is_better = True
    requires = frozenset(WEIGHTS)

    def compute(self, ctx: ScoringContext) -> float:
        values = {name: ctx.value(PROXIES.get(name)()) for name in WEIGHTS}
        return combine(values)
