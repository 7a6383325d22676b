"""Observations from a ground-truth table written by `ehnas bench train` (`nas_lib.bench.train`).

Each trained row becomes an `Observation`: its spec (parsed in the space of the table's
protocol), the proxies the table records for free (``params`` and ``flops``, converted to the
millions `nas_lib.proxies` reports), its per-epoch validation curve (``history``) and its
target. Failed rows and, where the table has a ``role`` column, rows that are not ``sample``
(the reference CNNs of the v2 table, which were chosen, not drawn) are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nas_lib.bench.train import SAMPLE, build_space, read_protocol, read_rows
from nas_lib.predictor.features import Observation
from nas_lib.space.base import SearchSpace

FREE_PROXIES = {"params": 1e6, "flops": 1e6}  # table column -> divisor to the proxy's unit (millions)


@dataclass(frozen=True)
class TableRows:
    """A table read for the predictor.

    Attributes:
        space: the space of the table's protocol.
        rows: one observation per kept row, target = ``target`` column.
        arch_ids: the rows' ``arch_id``, in the same order.
        truth: the ``truth`` column per kept row (what held-out rankings are judged on).
        target, truth_column: the columns used.
        note: why `truth_column` differs from the one asked for ("" when it does not).
    """

    space: SearchSpace
    rows: list[Observation]
    arch_ids: list[str]
    truth: list[float]
    target: str
    truth_column: str
    note: str = ""


def read_table(path: str | Path, target: str = "val_accuracy", truth: str = "test_accuracy") -> TableRows:
    """Reads the trained rows of `path` (a CSV with its ``.protocol.json`` beside it).

    Args:
        path: the table.
        target: the column the predictor learns (the run's fitness).
        truth: the column held-out rankings are judged on; a table without it (the MNIST
            tables have no test split) falls back to `target`, and `TableRows.note` says so.
    """
    path = Path(path)
    space = build_space(read_protocol(path).space)
    frame = pd.DataFrame(read_rows(path))  # the tolerant reader: a table being written may end in a torn line
    if frame.empty or target not in frame.columns:
        raise ValueError(f"{path.name}: no trained rows with a {target!r} column")
    for column in {target, truth, *FREE_PROXIES} & set(frame.columns):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[(frame["state"] == "ok") & frame[target].notna()]
    if "role" in frame.columns:
        frame = frame[frame["role"].fillna(SAMPLE).replace("", SAMPLE) == SAMPLE]
    note = ""
    if truth not in frame.columns:
        note = f"{path.name} has no {truth!r} column: held-out rankings are judged on {target!r}"
        truth = target
    rows = [_observation(space, record, target) for record in frame.to_dict("records")]
    return TableRows(space, rows, frame["arch_id"].astype(str).tolist(), frame[truth].astype(float).tolist(), target, truth, note)


def _observation(space: SearchSpace, record: dict, target: str) -> Observation:
    proxies = {name: float(record[name]) / scale for name, scale in FREE_PROXIES.items() if _present(record.get(name))}
    return Observation(space.from_string(str(record["arch"])), proxies, _curve(record.get("history")), float(record[target]))


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _curve(history: object) -> Sequence[float]:
    if not isinstance(history, str) or not history.strip():
        return ()
    return tuple(float(v) for v in json.loads(history))
