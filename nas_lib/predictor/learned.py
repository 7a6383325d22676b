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
        residual: with a curve, learn the target minus the last known epoch's accuracy (training
            rows whose curve is shorter are left out of that model).
        seed: seeds the model's members.
    """

    # the forest ranked best with few rows and as well as gbt with many (docs/predictor.md)
    model: str = "forest"
    code: bool = True
    summary: bool = True
    proxies: tuple[str, ...] | None = None
    max_epochs: int | None = None
    residual: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        MODELS.get(self.model)  # an unknown name fails here, listing the known ones
        if self.proxies is not None:
            object.__setattr__(self, "proxies", tuple(self.proxies))


@dataclass(frozen=True)
class _Fitted:
    """The model for one curve length and the feature columns it was fitted on."""

    features: FeatureBuilder
    model: Regressor
    residual: bool  # fitted on target minus the last known epoch's accuracy


def _last(rows: Sequence[Observation], epochs: int) -> np.ndarray:
    """Each row's accuracy after epoch `epochs`."""
    return np.array([float(r.curve[epochs - 1]) for r in rows], dtype=np.float64)


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
        self._models: dict[int, _Fitted] = {}

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
            fitted = self._model(epochs)
            part = [rows[i] for i in idx]
            m, s = fitted.model.predict(fitted.features.transform(part, epochs))
            mean[idx], spread[idx] = m + (_last(part, epochs) if fitted.residual else 0.0), s
        return Prediction(mean, spread)

    def score(self, rows: Sequence[Observation]) -> np.ndarray:
        """The predicted means alone (higher is better, like the target)."""
        return self.predict(rows).mean

    def _model(self, epochs: int) -> _Fitted:
        if epochs not in self._models:
            c = self.config
            rows = self.rows
            # Learn the gain after the last known epoch: with few rows a tree cannot learn
            # "about the epoch-k accuracy", which the residual gives it for free.
            known = [r for r in rows if len(r.curve) >= epochs]
            residual = c.residual and epochs > 0 and len(known) >= MIN_ROWS
            rows = known if residual else rows
            features = FeatureBuilder(self.space, use_code=c.code, use_summary=c.summary, proxies=c.proxies).fit(rows)
            y = np.array([r.target for r in rows], dtype=np.float64) - (_last(rows, epochs) if residual else 0.0)
            self._models[epochs] = _Fitted(features, MODELS.get(c.model)().fit(features.transform(rows, epochs), y, c.seed), residual)
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
