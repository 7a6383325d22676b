"""Paired-seed statistics for comparing methods at equal budget.

Every method runs on the same seeds (same pool, same budget), so the comparison of two methods
is the per-seed difference of their scores: its mean, standard error, Student-t 95% confidence
interval, and the minimum detectable difference (the true mean difference a two-sided paired
t-test at level `alpha` would detect with probability `power`, given the observed spread).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MeanSE:
    """Mean and standard error of the mean of n values (NaNs dropped)."""

    mean: float
    se: float
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """Mean of the per-seed differences a - b with its 95% CI and minimum detectable difference."""

    mean: float
    se: float
    low: float
    high: float
    mdd: float  # smallest true difference detected with 80% power at alpha 0.05 (two-sided)
    n: int
    wins: int  # seeds where a > b
    losses: int  # seeds where a < b

    @property
    def excludes_zero(self) -> bool:
        """Whether the confidence interval lies entirely on one side of 0."""
        return self.low > 0 or self.high < 0


def mean_se(values: Sequence[float]) -> MeanSE:
    """Mean and standard error (sample std / sqrt(n)) of `values`, NaNs dropped."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return MeanSE(math.nan, math.nan, 0)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return MeanSE(float(v.mean()), se, len(v))


def min_detectable_difference(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """(t_{1-alpha/2} + t_{power}) * sd / sqrt(n) with n - 1 degrees of freedom: the paired
    design's minimum detectable difference for per-seed differences of standard deviation `sd`."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> PairedDifference:
    """Compares a and b seed by seed (pairs with a NaN are dropped).

    Args:
        a: one score per seed for the first method.
        b: one score per seed for the second method, same seed order.
        level: confidence level of the interval.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores need equal lengths, got {len(x)} and {len(y)}")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    n = len(d)
    if n < 2:
        mean = float(d.mean()) if n else math.nan
        return PairedDifference(mean, math.nan, math.nan, math.nan, math.nan, n, int((d > 0).sum()), int((d < 0).sum()))
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    mean = float(d.mean())
    return PairedDifference(
        mean, se, mean - half, mean + half, min_detectable_difference(sd, n, 1 - level), n, int((d > 0).sum()), int((d < 0).sum())
    )
