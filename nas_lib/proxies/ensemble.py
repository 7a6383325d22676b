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
`Ensemble.fitted_on` says what the weights were fitted on; on any other space (no table) the
ensemble uses the fit-free aggregation below with equal weights instead.

Fit-free mode (`ensemble_free`, and `az_nas`): no weight is fitted on any table. Within a
population, each member's scores are ranked (1 = worst, n = best, failures last) and the
aggregate is sum over members of log(rank / n), the non-linear aggregation of Lee and Ham,
"AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024, arXiv
2403.19232: a network must rank high for every member to score high. A single architecture has
no rank, so `compute` places each member's score in a reference distribution of unlabelled
cells (`reference.QUANTILES`: member scores of sampled NB201 cells; no accuracy is used) and
sums log-percentiles; `rank_aggregate` is what a population (a search generation, a benchmark
sample) should use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from nas_lib.proxies import reference
from nas_lib.proxies.base import PROXIES, Proxy, ScoringContext, register_proxy

FIT_SPACE = "nb201"  # the space whose table the weights below were fitted on
# members of the fit-free ensemble, chosen before any of their fidelities was measured together:
# every deterministic data-dependent proxy with one pass per network plus AZ-NAS's four; flops,
# params and az_complexity measure the same size, so only az_complexity enters
FREE_MEMBERS: tuple[str, ...] = (
    "nwot", "synflow", "jacov", "snip", "grad_norm", "fisher", "zico",
    "az_expressivity", "az_progressivity", "az_trainability", "az_complexity",
)

# --- fitted constants (regenerate with benchmarks/fit_ensemble.py; do not edit by hand) -----
FIT_NOTE = 'fitted on 204 NB201 CIFAR-10 cells (ref400_scores.parquet, seed 0) by benchmarks/fit_ensemble.py: Spearman 0.9071 on them, 0.9127 on the 204 held-out cells'
WEIGHTS: dict[str, float] = {'nwot': 0.0131, 'synflow': 0.2717, 'jacov': 0.3868, 'params': 0.3285}
QUANTILES: dict[str, list[float]] = {
    'nwot': [597.893, 601.502, 602.913, 603.765, 606.32, 612.592, 639.227, 700.62, 701.346, 702.912, 704.754, 707.319, 708.833, 711.982, 715.86, 716.347, 717.124, 717.494, 718.184, 718.796, 719.232, 719.322, 720.546, 722.193, 722.519, 723.082, 724.189, 728.093, 729.138, 729.934, 735.919, 739.888, 742.315, 747.254, 751.439, 752.853, 754.349, 755.059, 756.504, 757.487, 758.213, 759.338, 760.118, 760.466, 760.961, 761.949, 762.578, 762.948, 763.028, 763.912, 764.049, 764.259, 765.052, 765.338, 765.641, 766.768, 769.122, 774.78, 776.413, 777.868, 779.447, 779.721, 780.148, 780.687, 781.466, 781.798, 782.264, 782.315, 782.7, 783.569, 784.12, 784.644, 784.706, 785.041, 785.223, 785.694, 785.784, 786.002, 786.705, 787.131, 787.471, 788.037, 788.106, 788.396, 788.867, 789.758, 795.816, 800.348, 802.841, 804.711, 805.046, 805.713, 806.067, 806.357, 806.845, 807.233, 807.875, 817.445, 818.166, 819.424, 820.765],
    'synflow': [2375940.0, 2470770.0, 2485370.0, 2579350.0, 80811700000.0, 83128700000.0, 88037000000.0, 35360600000000.0, 35429500000000.0, 35448900000000.0, 39548600000000.0, 50837500000000.0, 53940200000000.0, 1580310000000000.0, 4190620000000000.0, 4538710000000000.0, 4621110000000000.0, 4710120000000000.0, 7.37407e+16, 1.34469e+17, 1.37086e+17, 1.02772e+18, 1.59791e+18, 1.75892e+18, 2.01604e+18, 1.75829e+19, 1.14341e+20, 3.11335e+20, 3.66843e+20, 3.75925e+20, 3.77552e+20, 3.91575e+20, 3.96392e+20, 4.00179e+20, 7.19106e+20, 1.91497e+21, 1.93671e+21, 1.96003e+21, 2.02167e+21, 2.04915e+21, 2.12877e+21, 2.3579e+21, 3.09135e+21, 3.2601e+21, 3.93703e+21, 1.70781e+22, 3.262e+22, 3.33652e+22, 3.36381e+22, 3.59172e+22, 3.94966e+22, 1.20069e+23, 2.70308e+23, 9.78856e+23, 8.27876e+24, 1.21124e+25, 1.74174e+25, 2.85943e+25, 5.83231e+25, 1.27616e+26, 1.93553e+26, 2.81032e+26, 9.9812e+26, 7.14666e+27, 9.14106e+27, 9.66964e+27, 2.25829e+28, 2.67354e+28, 3.68606e+28, 6.44103e+28, 4.03161e+29, 4.27111e+29, 5.85819e+29, 9.64538e+29, 1.41591e+30, 2.05392e+30, 1.21137e+31, 2.83165e+31, 3.32919e+31, 2.18599e+32, 6.26301e+32, 1.72149e+34, 7.4349e+34, 1.73462e+35, 1.81837e+35, 1.9045e+35, 2.17174e+35, 2.44592e+35, 3.55865e+35, 7.95994e+35, 9.65474e+35, 1.86001e+36, 3.05586e+36, 3.50038e+36, 4.64931e+36, 1.06392e+37, 1.18669e+39, 1.32464e+40, 4.13051e+41, 6.00945e+41, 1.19066e+49],
    'jacov': [-9096.76, -6692.84, -5905.71, -4447.97, -3400.41, -2839.54, -1569.79, -807.345, -530.053, -357.758, -321.014, -313.485, -260.813, -197.453, -153.492, -146.105, -140.536, -116.926, -106.214, -101.095, -100.468, -99.3443, -95.299, -92.239, -86.6167, -84.6541, -82.9769, -80.9264, -78.8296, -77.7188, -76.5466, -75.3302, -74.8328, -73.7651, -73.0072, -72.5161, -71.9641, -71.8193, -71.6621, -71.1556, -70.15, -69.9766, -69.6195, -69.2323, -68.689, -68.5493, -68.3249, -68.1149, -67.8807, -67.6059, -67.3172, -67.0002, -66.5701, -66.5394, -66.394, -66.1781, -65.8602, -65.7272, -65.6314, -65.4968, -65.4405, -65.4082, -65.4021, -65.3779, -65.3661, -65.3585, -65.3433, -65.317, -65.3158, -65.3105, -65.3048, -65.2938, -65.2871, -65.2823, -65.2757, -65.2686, -65.2654, -65.2617, -65.2549, -65.2524, -65.2449, -65.2428, -65.2397, -65.2388, -65.2358, -65.2338, -65.227, -65.2172, -65.2087, -65.197, -65.1938, -65.1867, -65.1762, -65.1686, -65.159, -65.1568, -65.1551, -65.1509, -65.1226, -65.0879, -65.0753],
    'params': [0.073306, 0.073306, 0.073306, 0.073306, 0.073306, 0.073306, 0.101306, 0.101306, 0.101306, 0.101306, 0.101306, 0.101306, 0.101306, 0.101306, 0.101306, 0.129306, 0.129306, 0.129306, 0.129306, 0.129306, 0.129306, 0.129306, 0.129306, 0.148626, 0.157306, 0.178306, 0.316346, 0.316346, 0.316346, 0.316346, 0.316346, 0.316346, 0.316346, 0.316346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.344346, 0.372346, 0.372346, 0.372346, 0.372346, 0.372346, 0.372346, 0.372346, 0.372346, 0.372346, 0.372346, 0.391386, 0.400346, 0.400346, 0.400346, 0.428346, 0.559386, 0.559386, 0.559386, 0.559386, 0.559386, 0.559386, 0.559386, 0.560506, 0.587386, 0.587386, 0.587386, 0.587386, 0.587386, 0.587386, 0.587386, 0.587386, 0.587386, 0.587386, 0.587386, 0.615386, 0.615386, 0.615386, 0.615386, 0.615386, 0.630786, 0.643386, 0.7404, 0.802426, 0.802426, 0.802426, 0.802426, 0.802426, 0.802426, 0.802426, 0.802426, 0.802426, 0.830426, 0.856746, 0.858426, 1.04547],
}
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


def oriented_values(name: str, values: Sequence[float]) -> np.ndarray:
    """Member scores turned so that higher is better; NaN and failures become -inf."""
    v = np.asarray(values, dtype=float) * (1.0 if PROXIES.get(name).higher_is_better else -1.0)
    return np.where(np.isfinite(v), v, -np.inf)


def rank_aggregate(columns: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Fit-free rank aggregation of a population: sum over members of log(rank / n).

    Args:
        columns: member name -> its raw scores, one per architecture, in the same order
            (NaN marks a failure: ranked below every success, ties share their mean rank).

    Returns:
        One aggregate per architecture (higher is better; at most 0).

    Raises:
        ValueError: if there is no member or the columns differ in length.
    """
    if not columns:
        raise ValueError("rank aggregation needs at least one member")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"member columns differ in length: {sorted(lengths)}")
    n = lengths.pop()
    total = np.zeros(n)
    for name, values in columns.items():
        total += np.log(stats.rankdata(oriented_values(name, values)) / n)
    return total


def log_percentile_sum(values: Mapping[str, float]) -> float:
    """One architecture's fit-free score: sum of log-percentiles in the reference population."""
    total = 0.0
    for name, value in values.items():
        v = float(oriented_values(name, [value])[0])
        if not math.isfinite(v):
            raise ValueError(f"member {name} failed")
        q = reference.QUANTILES.get(name)
        floor = 0.5 / len(q) if q else 1e-3  # the bottom of the reference is not a zero rank
        total += math.log(max(percentile(name, v, reference.QUANTILES), floor))
    return total


@register_proxy
class Ensemble(Proxy):
    """Weighted mean of member percentiles (higher is better), weights fitted on `fitted_on`.

    On a space other than `FIT_SPACE` there is no table behind the weights: the score is then
    the fit-free log-percentile sum of the same members (equal weights).
    """

    name = "ensemble"
    version = "2"
    higher_is_better = True
    requires = frozenset(WEIGHTS)
    fitted_on = FIT_NOTE

    def compute(self, ctx: ScoringContext) -> float:
        values = {name: ctx.value(PROXIES.get(name)()) for name in WEIGHTS}
        if getattr(ctx.space, "name", None) != FIT_SPACE:
            return log_percentile_sum(values)
        return combine(values)


@register_proxy
class FreeEnsemble(Proxy):
    """Fit-free rank aggregation of `FREE_MEMBERS` (higher is better; see module docstring)."""

    name = "ensemble_free"
    version = "2"  # 2: AZ-NAS members on Gaussian inputs
    higher_is_better = True
    requires = frozenset(FREE_MEMBERS)
    population = True  # `rank_aggregate` over a population is the method; `compute` approximates it

    def compute(self, ctx: ScoringContext) -> float:
        return log_percentile_sum({name: ctx.value(PROXIES.get(name)()) for name in FREE_MEMBERS})
