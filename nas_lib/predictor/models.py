"""The regressors the learned predictor can fit, registered by name (`MODELS`).

Each takes a float matrix with NaN for unknown features and returns a mean and a spread per row
(the spread is the disagreement of an ensemble's members, or a GP's posterior deviation). All
are scikit-learn models, fast enough to refit after every trained architecture (150 rows:
well under a second on one core).

- ``gbt``: a bagged ensemble of histogram gradient-boosted trees (scikit-learn's
  `HistGradientBoostingRegressor`, which routes NaN natively), shallow and strongly shrunk
  because the run has tens of rows, not thousands.
- ``forest``: a random forest (scikit-learn >= 1.4 splits on NaN too).
- ``ridge``: ridge regression on standardised features, NaN filled with the column's mean plus a
  "was missing" indicator; the spread is that of bootstrap members.
- ``gp``: a Gaussian process (RBF kernel with one length scale, plus white noise) on the same
  filled features.
- ``mix``: the mean of ``gbt`` and ``ridge``.
"""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np

from nas_lib.registry import Registry


class Regressor(Protocol):
    """A model of y given x that says how unsure it is."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> Regressor: ...

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


MODELS: Registry[type[Regressor]] = Registry("predictor model")


def _bootstrap(n: int, member: int, rng: np.random.Generator) -> np.ndarray:
    """Member 0 sees every row; the others a bootstrap resample."""
    return np.arange(n) if member == 0 else rng.integers(n, size=n)


@MODELS.register("gbt")
class BaggedBoosting:
    """Bagged `HistGradientBoostingRegressor`s; mean and spread across members."""

    # Few members and rounds: the predictor refits after every trained architecture (seconds per
    # refit of each model: benchmarks/predictor.py, docs/predictor.md).
    members = 4
    # Tens of rows: leaves of 3 and depth 3 (the library's default leaves of 20 make one split on 40 rows).
    params = {"max_iter": 60, "learning_rate": 0.1, "max_depth": 3, "min_samples_leaf": 3, "l2_regularization": 1.0}

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> BaggedBoosting:
        from sklearn.ensemble import HistGradientBoostingRegressor

        rng = np.random.default_rng(seed)
        self.models = []
        for m in range(self.members):
            idx = _bootstrap(len(y), m, rng)
            model = HistGradientBoostingRegressor(**self.params, random_state=int(rng.integers(2**31)))
            self.models.append(model.fit(x[idx], y[idx]))
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per = np.stack([m.predict(x) for m in self.models], axis=1)
        return per.mean(axis=1), per.std(axis=1)


@MODELS.register("forest")
class Forest:
    """A random forest; mean and spread across trees."""

    trees = 100

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> Forest:
        from sklearn.ensemble import RandomForestRegressor

        self.model = RandomForestRegressor(n_estimators=self.trees, max_features=0.5, min_samples_leaf=2, random_state=seed).fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per = np.stack([t.predict(x) for t in self.model.estimators_], axis=1)
        return per.mean(axis=1), per.std(axis=1)


class _Filled:
    """Column means for NaN plus one indicator column per feature that was ever missing;
    then standardisation (constant columns are dropped)."""

    def fit(self, x: np.ndarray) -> _Filled:
        self.mean = np.where(np.isnan(x).all(axis=0), 0.0, np.nanmean(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0))
        self.missing = np.flatnonzero(np.isnan(x).any(axis=0))
        full = self._fill(x)
        self.centre, scale = full.mean(axis=0), full.std(axis=0)
        self.keep = np.flatnonzero(scale > 0)
        self.scale = scale[self.keep]
        return self

    def _fill(self, x: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(x), self.mean, x)
        return np.hstack([filled, np.isnan(x[:, self.missing]).astype(np.float64)])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (self._fill(x) - self.centre)[:, self.keep] / self.scale


@MODELS.register("ridge")
class BaggedRidge:
    """Bootstrap ridge regressions on filled, standardised features."""

    members = 8
    alpha = 10.0  # standardised features, tens of rows: a firm pull towards the mean

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> BaggedRidge:
        from sklearn.linear_model import Ridge

        rng = np.random.default_rng(seed)
        self.filled = _Filled().fit(x)
        z = self.filled(x)
        self.models = [Ridge(alpha=self.alpha).fit(z[idx], y[idx]) for idx in (_bootstrap(len(y), m, rng) for m in range(self.members))]
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self.filled(x)
        per = np.stack([m.predict(z) for m in self.models], axis=1)
        return per.mean(axis=1), per.std(axis=1)


@MODELS.register("gp")
class Gaussian:
    """A Gaussian process (isotropic RBF + white noise) on filled, standardised features."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> Gaussian:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        self.filled = _Filled().fit(x)
        z = self.filled(x)
        # one length scale: an ARD kernel over ~90 features costs seconds per refit and overfits tens of rows
        kernel = ConstantKernel() * RBF(length_scale=np.sqrt(z.shape[1]), length_scale_bounds=(1e-1, 1e4)) + WhiteKernel(0.1, (1e-6, 10.0))
        with warnings.catch_warnings():  # bound warnings on tiny fits say nothing the ranking does not
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed).fit(z, y)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.model.predict(self.filled(x), return_std=True)
        return mean, std


@MODELS.register("mix")
class Mix:
    """The mean of ``gbt`` and ``ridge``: the linear member carries monotone trends (larger is
    better) that trees need many rows to learn; the trees carry interactions."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> Mix:
        self.members: list[Regressor] = [BaggedBoosting().fit(x, y, seed), BaggedRidge().fit(x, y, seed)]
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (m1, s1), (m2, s2) = (m.predict(x) for m in self.members)
        return (m1 + m2) / 2, np.sqrt((s1**2 + s2**2) / 2 + ((m1 - m2) / 2) ** 2)
