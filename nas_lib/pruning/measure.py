"""Measuring a cut: exact size before and after, and top-k retention of the best architectures.

Retention: draw K architectures from the UNPRUNED space (or enumerate it when it is small, as
NB201's 15,625 cells are), score them (benchmark accuracy when a table is given, a proxy
otherwise), and report the share of the top 1% and top 5% that the pruned space still contains.
Lift is top-1% retention over the share of the reference draw that the pruned space keeps, so a
random cut has lift 1. Benchmark: NAS-Bench-201 (Dong & Yang, 2020, arXiv 2001.00326).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nas_lib.pruning.base import MeasureConfig
from nas_lib.space.base import SearchSpace

ENUMERATE_LIMIT = 50_000  # spaces up to this size are measured on every architecture


@dataclass(frozen=True)
class Reference:
    """Scored architectures of the unpruned space, best first."""

    specs: tuple[Hashable, ...]
    scores: np.ndarray
    exhaustive: bool

    def top(self, fraction: float) -> tuple[Hashable, ...]:
        """The best `fraction` of the reference (at least one architecture), plus every
        architecture tied with the last one, so the set never depends on enumeration order."""
        n = max(1, int(math.floor(fraction * len(self.specs))))
        while n < len(self.specs) and self.scores[n] == self.scores[n - 1]:
            n += 1
        return self.specs[:n]


@dataclass(frozen=True)
class Retention:
    kept_fraction: float
    top1: float
    top5: float

    @property
    def lift(self) -> float:
        return self.top1 / self.kept_fraction if self.kept_fraction > 0 else float("nan")


def draw_specs(space: SearchSpace, k: int, rng: np.random.Generator) -> list[Hashable]:
    """K draws spread as the space spreads them (`SearchSpace.spread_sample`: uniform, except
    the hybrid space, which is drawn depth-stratified)."""
    return list(space.spread_sample(k, rng))


def draw_reference(space: SearchSpace, measure: MeasureConfig) -> Reference:
    """Scores the unpruned `space` with `measure.score_fn`: `measure.reference_specs` when given,
    else every architecture when the space is enumerable and at most `ENUMERATE_LIMIT`, else K
    draws (duplicates removed)."""
    if measure.score_fn is None:
        raise ValueError("MeasureConfig.score_fn is needed to measure retention")
    enumerate_all = getattr(space, "enumerate", None)  # only finite spaces have one
    exhaustive = measure.reference_specs is None and enumerate_all is not None and space.size() <= ENUMERATE_LIMIT
    if measure.reference_specs is not None:
        specs = list(dict.fromkeys(measure.reference_specs))
    elif exhaustive and enumerate_all is not None:
        specs = list(enumerate_all())
    else:
        specs = list(dict.fromkeys(draw_specs(space, measure.k, np.random.default_rng(measure.seed))))
    scores = np.array([float(measure.score_fn(s)) for s in specs])
    scored = np.flatnonzero(~np.isnan(scores))  # a score that lacks a cell (NaN) cannot rank it
    if len(scored) == 0:
        raise ValueError("the score function scored none of the reference architectures")
    order = scored[np.argsort(-scores[scored], kind="stable")]
    return Reference(tuple(specs[i] for i in order), scores[order], exhaustive and len(scored) == len(specs))


def share_inside(space: SearchSpace, specs: Sequence[Hashable]) -> float:
    """Fraction of `specs` that `space` contains."""
    return sum(bool(space.contains(s)) for s in specs) / len(specs) if specs else float("nan")


def retention(reference: Reference, space: SearchSpace, root_size: int | None = None) -> Retention:
    """Top-1%/top-5% retention of `space` against `reference`; the kept fraction is exact
    (size ratio) when the reference is exhaustive and `root_size` is given."""
    if reference.exhaustive and root_size:
        kept = space.size() / root_size
    else:
        kept = share_inside(space, reference.specs)
    return Retention(kept, share_inside(space, reference.top(0.01)), share_inside(space, reference.top(0.05)))


def table_score_fn(path: str | Path, metric: str, space: SearchSpace, arch_column: str = "arch") -> Callable[[Hashable], float]:
    """Ground truth from a benchmark table (CSV or Parquet with an architecture-string column):
    spec -> metric, looked up by the space's canonical string (NaN when missing)."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = {arch_column, metric} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; columns: {list(frame.columns)}")
    lookup = dict(zip(frame[arch_column].astype(str), frame[metric].astype(float)))
    return lambda spec: lookup.get(space.to_string(spec), float("nan"))
