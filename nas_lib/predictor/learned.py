"""`LearnedPredictor`: fit on what a run has trained, predict for anything it knows less about.

Training rows carry full curves, while an architecture to predict may have none, or only its
first k epochs. A model trained on 12-epoch curves would read a 2-epoch curve as a poor network,
so the predictor keeps one model per curve length: to predict rows that know k epochs it fits
(once, then caches) a model on the training rows with their curves cut to k. Rows of different k
in one call are predicted by their own model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas_lib.predictor.features import FeatureBuilder, Observation
from nas_lib.predictor.models import MODELS, Regressor
from nas_lib.space.base import SearchSpace

MIN_ROWS = 3  # fewer trained rows than this: no model, every prediction is NaN


@dataclass(frozen=True)
class PredictorConfig:
    """Options of the learned predictor.

    Attributes:
        model: a name in `nas_lib.predictor.models.MODELS`.
        code, summary: whether the code digits / the space's summary are features.
        proxies: proxy names to read (None: every proxy the training rows carry; () none).
        max_epochs: read at most this many curve entries (None: as many as a query knows).
        seed: seeds the model's members.
    """

    model: str = "gbt"
    code: bool = True
    summary: bool = True
    proxies: tuple[str, ...] | None = None
    max_epochs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        MODELS.get(self.model)  # an unknown name fails here, listing the known ones
        if self.proxies is not None:
            object.__setattr__(self, "proxies", tuple(self.proxies))


@dataclass(frozen=True)
class Prediction:
    """Predicted target per row: `mean` and `spread` (NaN where no model could be fitted)."""

    mean: np.ndarray
    spread: np.ndarray


class LearnedPredictor:
    """A surrogate of the trained score over code, summary, proxies and partial curves.

    Args:
        space: the space of the observations' specs.
        config: the options (`PredictorConfig`).
    """

    def __init__(self, space: SearchSpace, config: PredictorConfig | None = None) -> None:
        self.space = space
        self.config = config or PredictorConfig()
        self.rows: list[Observation] = []
        self._models: dict[int, tuple[FeatureBuilder, Regressor]] = {}

    def fit(self, rows: Sequence[Observation]) -> LearnedPredictor:
        """Replaces the training rows with `rows` (those with a finite target); models are
        fitted lazily, per curve length, on the next `predict`."""
        self.rows = [r for r in rows if r.target is not None and np.isfinite(r.target)]
        self._models = {}
        return self

    def add(self, rows: Sequence[Observation]) -> LearnedPredictor:
        """Adds trained rows to those already held and drops the fitted models."""
        return self.fit([*self.rows, *rows])

    def epochs_read(self, row: Observation) -> int:
        """How many curve entries the prediction for `row` reads."""
        known = len(row.curve)
        return known if self.config.max_epochs is None else min(known, self.config.max_epochs)

    def predict(self, rows: Sequence[Observation]) -> Prediction:
        """Predicted targets of `rows` (their targets, if any, are ignored)."""
        mean, spread = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        if len(self.rows) < MIN_ROWS or not rows:
            return Prediction(mean, spread)
        by_epochs: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            by_epochs.setdefault(self.epochs_read(row), []).append(i)
        for epochs, idx in by_epochs.items():
            features, model = self._model(epochs)
            m, s = model.predict(features.transform([rows[i] for i in idx], epochs))
            mean[idx], spread[idx] = m, s
        return Prediction(mean, spread)

    def score(self, rows: Sequence[Observation]) -> np.ndarray:
        """The predicted means alone (higher is better, like the target)."""
        return self.predict(rows).mean

    def _model(self, epochs: int) -> tuple[FeatureBuilder, Regressor]:
        if epochs not in self._models:
            c = self.config
            features = FeatureBuilder(self.space, use_code=c.code, use_summary=c.summary, proxies=c.proxies).fit(self.rows)
            x = features.transform(self.rows, epochs)
            y = np.array([r.target for r in self.rows], dtype=np.float64)
            self._models[epochs] = (features, MODELS.get(c.model)().fit(x, y, c.seed))
        return self._models[epochs]

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the config and the training rows (specs as canonical
        strings). Models are not stored: they are refitted, identically, from the rows."""
        return {
            "config": dataclasses.asdict(self.config),
            "rows": [
                {"arch": self.space.to_string(r.spec), "proxies": dict(r.proxies), "curve": [float(v) for v in r.curve], "target": r.target}
                for r in self.rows
            ],
        }

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> LearnedPredictor:
        """The predictor a `state_dict` describes, on `space`."""
        config = dict(state["config"])
        if config.get("proxies") is not None:
            config["proxies"] = tuple(config["proxies"])
        rows = [Observation(space.from_string(r["arch"]), r["proxies"], tuple(r["curve"]), r["target"]) for r in state["rows"]]
        return cls(space, PredictorConfig(**config)).fit(rows)
