"""A trained table read as learning curves: what the tabular simulation replays.

Each ok row of a table written by `nas_lib.bench.train` has a `history` (validation accuracy
after each epoch of ONE cosine schedule of `epochs` epochs) and the wall time of that whole
training (`seconds`). The reported score of an architecture is its `test_accuracy`; when a
second table trained with another seed covers every row, the two seeds' test accuracies are
averaged (the winner "retrained with 2 seeds"). A table without `test_accuracy` (the MNIST
tables) falls back to the final validation accuracy, and `score_note` says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas_lib.bench.train import SAMPLE, read_protocol, read_rows


@dataclass(frozen=True)
class CurveTable:
    """The ok rows of a table as arrays (row i of every array is architecture `archs[i]`).

    Attributes:
        archs: canonical architecture strings.
        curves: (rows, epochs) validation accuracy after each epoch.
        seconds: wall time of the full `epochs`-epoch training of each row.
        params: parameter count (the zero-cost proxies read it and `flops` from the table).
        flops: forward FLOPs.
        score: the reported accuracy (test, seed-averaged where possible; see `score_note`).
        roles: "sample" or "reference" (the plain residual CNN rows).
        space: the protocol's space section (to build the `SearchSpace` the strategies search).
        score_note: how `score` was made.
    """

    archs: tuple[str, ...]
    curves: np.ndarray
    seconds: np.ndarray
    params: np.ndarray
    flops: np.ndarray
    score: np.ndarray
    roles: tuple[str, ...]
    space: dict[str, Any]
    score_note: str = ""

    @property
    def epochs(self) -> int:
        """The full training budget E every curve covers."""
        return int(self.curves.shape[1])

    def rows(self, role: str = SAMPLE) -> np.ndarray:
        """Indices of the rows of one role."""
        return np.array([i for i, r in enumerate(self.roles) if r == role], dtype=int)

    def half(self, name: str, first: int | None = None) -> np.ndarray:
        """The sample rows, or one half of them: ``design`` (the 1st, 3rd, ... in table order,
        the order they were sampled in) to choose a method's options on, ``report`` (the 2nd,
        4th, ...) to report on, so a recipe tuned on the table is not scored on its own rows.
        `first` keeps only the table's first `first` sample rows before halving: a table grows by
        appending, so a figure measured at that size stays reproducible."""
        rows = self.rows()
        if first is not None:
            if not 0 < first <= len(rows):
                raise ValueError(f"first must be in 1..{len(rows)} (the table's sample rows), got {first}")
            rows = rows[:first]
        halves: dict[str, np.ndarray] = {"all": rows, "design": rows[0::2], "report": rows[1::2]}
        if name not in halves:
            raise KeyError(f"no half {name!r}; known: {', '.join(halves)}")
        return halves[name]

    def column(self, name: str) -> np.ndarray:
        """A per-row numeric column by name (``params``, ``flops``, ``seconds``, ``score``)."""
        if name not in ("params", "flops", "seconds", "score"):
            raise KeyError(f"no numeric column {name!r}; known: params, flops, seconds, score")
        return np.asarray(getattr(self, name), dtype=float)


def load_curve_table(path: str | Path, seed1: str | Path | None = None) -> CurveTable:
    """Reads the ok rows of a trained table (and optionally its reseeded twin).

    Args:
        path: the table CSV (its protocol JSON beside it).
        seed1: the same architectures trained with another seed; used for the score only when
            it covers every row (otherwise one seed, and the note says why).

    Raises:
        ValueError: no ok row has a full-length history.
    """
    protocol = read_protocol(path)
    epochs = protocol.epochs
    rows = [r for r in read_rows(path) if r["state"] == "ok"]
    rows = [r for r in rows if len(json.loads(r["history"] or "[]")) == epochs]
    if not rows:
        raise ValueError(f"{path}: no ok row with a {epochs}-epoch history")
    has_test = all(r.get("test_accuracy") not in (None, "", "nan") for r in rows)
    column = "test_accuracy" if has_test else "val_accuracy"
    score = np.array([float(r[column]) for r in rows])
    note = "test_accuracy" if has_test else "no test_accuracy column: the score is the validation accuracy (selection and report on one split)"
    if seed1 is not None:
        score, extra = _seed_average(rows, column, seed1, score)
        note += extra
    else:
        note += "; one training seed"
    return CurveTable(
        archs=tuple(r["arch"] for r in rows),
        curves=np.array([json.loads(r["history"]) for r in rows], dtype=float),
        seconds=np.array([float(r["seconds"]) for r in rows]),
        params=np.array([float(r["params"]) for r in rows]),
        flops=np.array([float(r["flops"]) for r in rows]),
        score=score,
        roles=tuple(r.get("role") or SAMPLE for r in rows),
        space=protocol.space,
        score_note=note,
    )


def _seed_average(rows: list[dict[str, Any]], column: str, seed1: str | Path, score: np.ndarray) -> tuple[np.ndarray, str]:
    """The mean of both seeds' `column` when the seed-1 table covers every row."""
    other: dict[str, Any] = {r["arch"]: r.get(column) for r in read_rows(seed1) if r["state"] == "ok"}
    missing = [r["arch"] for r in rows if other.get(r["arch"]) in (None, "", "nan")]
    if missing:
        return score, f"; one training seed ({Path(seed1).name} lacks {len(missing)} of {len(rows)} rows)"
    twin = np.array([float(other[r["arch"]]) for r in rows])
    return (score + twin) / 2, f"; mean of 2 training seeds (with {Path(seed1).name})"
