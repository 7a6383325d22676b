"""Small performance predictors on architecture codes, shared by predictor-guided strategies.

Features are the one-hot expansion of `space.encode(spec)` (one block of `code_cardinalities()[i]`
columns per code position), plus all pairwise products of one-hot columns when the space is small
enough (NB201: 30 one-hot columns, 435 pairs), because NB201 accuracy depends on which operations
meet on the same paths, not only on each edge alone.

Two models, both fast enough to refit after every result:
- ``ridge``: bootstrap ensemble of ridge regressions (closed form); mean and spread of members.
- ``trees``: extremely randomised trees (scikit-learn); mean and spread across trees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas_lib.space.base import InvalidArchitectureError, SearchSpace

MAX_PAIRWISE_COLUMNS = 64  # above this many one-hot columns, pairwise features grow too large


class CodeFeatures:
    """One-hot (and optionally pairwise) features of specs of one space."""

    def __init__(self, space: SearchSpace, pairwise: bool | None = None) -> None:
        self.space = space
        self.cards = np.array(space.code_cardinalities(), dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.cards)[:-1]])
        self.width = int(self.cards.sum())
        self.pairwise = self.width <= MAX_PAIRWISE_COLUMNS if pairwise is None else pairwise
        self._iu = np.triu_indices(self.width, k=1)

    def codes(self, specs: Sequence[Any]) -> np.ndarray:
        """The integer codes of `specs`, one row each."""
        return np.array([self.space.encode(s) for s in specs], dtype=np.int64).reshape(len(specs), len(self.cards))

    def one_hot(self, codes: np.ndarray) -> np.ndarray:
        """One-hot rows of integer codes."""
        out = np.zeros((len(codes), self.width), dtype=np.float64)
        rows = np.repeat(np.arange(len(codes)), codes.shape[1])
        out[rows, (codes + self.offsets).ravel()] = 1.0
        return out

    def __call__(self, specs: Sequence[Any]) -> np.ndarray:
        x = self.one_hot(self.codes(specs))
        if not self.pairwise:
            return x
        pairs = (x[:, :, None] * x[:, None, :])[:, self._iu[0], self._iu[1]]
        return np.hstack([x, pairs])


@dataclass
class RidgeEnsemble:
    """Bootstrap ensemble of ridge regressions on standardised targets."""

    members: int = 5
    alpha: float = 1.0  # one-hot features are 0/1, so a unit penalty is a mild prior towards the mean
    coef: np.ndarray | None = None
    mean_y: float = 0.0
    scale_y: float = 1.0

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> RidgeEnsemble:
        self.mean_y, self.scale_y = float(y.mean()), float(y.std() or 1.0)
        z = (y - self.mean_y) / self.scale_y
        coefs = []
        for m in range(self.members):
            idx = np.arange(len(y)) if m == 0 else rng.integers(len(y), size=len(y))
            xs, zs = x[idx], z[idx]
            # Dual form: the data are far fewer than the features.
            gram = xs @ xs.T + self.alpha * np.eye(len(idx))
            coefs.append(xs.T @ np.linalg.solve(gram, zs))
        self.coef = np.stack(coefs, axis=1)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        preds = x @ self.coef * self.scale_y + self.mean_y
        return preds.mean(axis=1), preds.std(axis=1)


@dataclass
class TreeEnsemble:
    """Extremely randomised trees; the spread across trees is the uncertainty."""

    trees: int = 50
    model: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> TreeEnsemble:
        from sklearn.ensemble import ExtraTreesRegressor

        self.model = ExtraTreesRegressor(n_estimators=self.trees, min_samples_leaf=1, random_state=int(rng.integers(2**31)))
        self.model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_tree = np.stack([t.predict(x) for t in self.model.estimators_], axis=1)
        return per_tree.mean(axis=1), per_tree.std(axis=1)


PREDICTORS = {"ridge": RidgeEnsemble, "trees": TreeEnsemble}


def fit_predictor(kind: str, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> RidgeEnsemble | TreeEnsemble:
    """Fits a fresh predictor of `kind` (``ridge`` or ``trees``) on features `x`, targets `y`."""
    if kind not in PREDICTORS:
        raise KeyError(f"unknown predictor {kind!r}; known: {', '.join(sorted(PREDICTORS))}")
    return PREDICTORS[kind]().fit(x, y, rng)


def code_neighbours(space: SearchSpace, spec: Any) -> list[Any]:
    """Every valid spec one code digit away from `spec` (its full one-step neighbourhood, in
    code order); digits that decode to an invalid architecture are skipped."""
    code = list(space.encode(spec))
    out = []
    for i, card in enumerate(space.code_cardinalities()):
        for value in range(card):
            if value == code[i]:
                continue
            try:
                out.append(space.decode(code[:i] + [value] + code[i + 1 :]))
            except InvalidArchitectureError:
                continue
    return out


def candidate_pool(strategy: Any, size: int, parents: int = 10, local_fraction: float = 0.7) -> list[Any]:
    """Unseen candidates for a predictor to rank: one- and two-step mutations of the best
    `parents` evaluated specs (about `local_fraction` of the pool, fewer when those
    neighbourhoods run out) and uniform samples (the rest)."""
    space, rng = strategy.space, strategy.rng
    top = [s for s, _ in sorted(strategy.scored_history(), key=lambda t: -t[1])[:parents]]
    pool: dict[str, Any] = {}

    def offer(spec: Any) -> None:
        key = space.to_string(spec)
        if key not in pool and not strategy.is_seen(spec):
            pool[key] = spec

    n_local = int(size * local_fraction) if top else 0
    for attempt in range(2 * n_local):  # bounded: small neighbourhoods repeat quickly
        if len(pool) >= n_local:
            break
        spec = space.mutate(top[attempt % len(top)], rng)
        offer(space.mutate(spec, rng) if attempt % 2 else spec)
    for _ in range(2 * size):
        if len(pool) >= size:
            break
        offer(space.sample(rng))
    return list(pool.values())
