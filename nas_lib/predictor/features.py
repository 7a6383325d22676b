"""What the learned predictor reads about one architecture: its code, a summary of it, its
zero-cost proxy scores and the first epochs of its learning curve.

A row of features is the concatenation of four blocks, each fixed in width once the builder is
fitted to the training rows:

- ``code``: the space's fixed-length integer code (`SearchSpace.encode`), one column per digit.
  Trees split on digits directly; digits that never vary in the training rows are dropped.
- ``summary``: what a space registers in `SUMMARIES` under its name (for the hybrid space:
  depth, block and connection counts, counts per stage, mean hyperparameters per family; see
  `nas_lib.predictor.hybrid_summary`). A space with none registered has no summary columns.
  These aggregates are what a tree can learn from few rows; a variable-depth code alone spreads
  "three ViT blocks" over many positions.
- ``proxy``: one column per proxy name seen in the training rows (e.g. ``params``, ``flops``,
  ``nwot``), NaN where a row lacks it.
- ``curve``: validation accuracy after epochs 1..k, NaN beyond the epochs a row knows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas_lib.registry import Registry
from nas_lib.search.predictors import CodeFeatures
from nas_lib.space.base import SearchSpace

# space name -> function (space, spec) -> ordered {feature name: value}
SUMMARIES: Registry[Callable[[SearchSpace, Any], dict[str, float]]] = Registry("architecture summary")


@dataclass(frozen=True)
class Observation:
    """What is known about one architecture.

    Attributes:
        spec: the architecture (a spec of the predictor's space).
        proxies: zero-cost proxy scores by registered proxy name (units as `nas_lib.proxies`
            reports them: ``params`` and ``flops`` in millions).
        curve: validation accuracy after each finished epoch of the run's training schedule
            (empty when the architecture has not been trained at all).
        target: the trained score to learn (the run's fitness, e.g. best validation accuracy);
            None for an architecture to predict.
    """

    spec: Any
    proxies: Mapping[str, float] = field(default_factory=dict)
    curve: Sequence[float] = ()
    target: float | None = None


def summary_of(space: SearchSpace, spec: Any) -> dict[str, float]:
    """The summary features `space` registers (empty when it registers none)."""
    return SUMMARIES.get(space.name)(space, spec) if space.name in SUMMARIES else {}


@dataclass
class FeatureBuilder:
    """Turns observations into a fixed-width float matrix (NaN = unknown).

    `fit` fixes the columns from the training rows (the code digits that vary, the summary
    names, the proxy names seen); `transform` then builds rows for any observation with the
    curve cut to `epochs` entries.

    Attributes:
        space: the space whose specs the observations hold.
        use_code, use_summary: whether the code digits and the summary are features.
        proxies: the proxy names to read (None: every name seen in the training rows).
    """

    space: SearchSpace
    use_code: bool = True
    use_summary: bool = True
    proxies: tuple[str, ...] | None = None
    code_columns: list[int] = field(default_factory=list)
    summary_names: list[str] = field(default_factory=list)
    proxy_names: list[str] = field(default_factory=list)
    _summary_memo: dict[Any, dict[str, float]] = field(default_factory=dict, repr=False)

    def fit(self, rows: Sequence[Observation]) -> FeatureBuilder:
        """Fixes the columns from the training rows."""
        codes = self.codes(rows)
        self.code_columns = [int(j) for j in np.flatnonzero(np.ptp(codes, axis=0) > 0)] if self.use_code and len(rows) else []
        self.summary_names = list(summary_of(self.space, rows[0].spec)) if self.use_summary and rows else []
        seen = sorted({name for row in rows for name in row.proxies})
        self.proxy_names = list(self.proxies) if self.proxies is not None else seen
        return self

    def codes(self, rows: Sequence[Observation]) -> np.ndarray:
        """The integer codes of the rows' specs, one row each."""
        return CodeFeatures(self.space, pairwise=False).codes([r.spec for r in rows])

    def names(self, epochs: int) -> list[str]:
        """Column names of `transform(rows, epochs)`."""
        return (
            [f"code[{j}]" for j in self.code_columns]
            + [f"summary.{n}" for n in self.summary_names]
            + [f"proxy.{n}" for n in self.proxy_names]
            + [f"curve[{e + 1}]" for e in range(epochs)]
        )

    def transform(self, rows: Sequence[Observation], epochs: int) -> np.ndarray:
        """Feature rows of `rows` reading at most the first `epochs` curve entries."""
        blocks = [
            self.codes(rows)[:, self.code_columns].astype(np.float64),
            np.array([[summary.get(n, math.nan) for n in self.summary_names] for summary in self._summaries(rows)], dtype=np.float64),
            np.array([[_number(r.proxies.get(n)) for n in self.proxy_names] for r in rows], dtype=np.float64),
            np.array([_padded(r.curve, epochs) for r in rows], dtype=np.float64),
        ]
        return np.hstack([b.reshape(len(rows), -1) for b in blocks])

    def _summaries(self, rows: Sequence[Observation]) -> list[dict[str, float]]:
        if not self.summary_names:
            return [{} for _ in rows]
        for r in rows:  # specs are frozen and hashable; a run refits on the same ones many times
            if r.spec not in self._summary_memo:
                self._summary_memo[r.spec] = summary_of(self.space, r.spec)
        return [self._summary_memo[r.spec] for r in rows]


def _number(value: Any) -> float:
    """A finite float, or NaN for a missing or failed score."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _padded(curve: Sequence[float], epochs: int) -> list[float]:
    known = [_number(v) for v in list(curve)[:epochs]]
    return known + [math.nan] * (epochs - len(known))
