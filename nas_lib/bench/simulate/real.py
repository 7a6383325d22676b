"""Real runs of the comparison's methods: every evaluation trains, none is looked up.

`TrainingObjective` has the budget accounting of `TabularObjective` but trains the row's
architecture for real, the way the pipeline's rungs do (`nas_lib.fidelity.training`): one cosine
schedule over the table's E epochs, a promoted row continuing from its checkpoint, under a
training seed of its own. It charges the seconds the table recorded for that training, so a real
run spends exactly the budget the simulation of the same pool and seed spends, whatever else the
machine is doing; the seconds it really trained are kept beside (`wall`).

The winner is then continued to the full E epochs (not charged, as the table's score is not) and
scored on the test split. Set beside the simulation of the same seed, this says whether what the
table predicts survives a new training seed: the same methods, pools and budgets, with the
recorded curves replaced by fresh ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from nas_lib.bench.simulate.objective import TabularObjective
from nas_lib.bench.simulate.table import CurveTable
from nas_lib.bench.train import test_accuracy
from nas_lib.fidelity.training import RungProtocol, build_seeded, train_to_budget


class TrainingObjective(TabularObjective):
    """Budgeted real trainings of the table's architectures.

    Args:
        table: the trained table whose rows are the candidates (their recorded seconds are the charge).
        rows: the rows a method may train.
        budget: seconds available, in the table's recorded seconds.
        space: the table's `SearchSpace` (builds each row's network).
        data: the protocol's split `ImageDataset` (with its test split).
        protocol: the rung protocol; its horizon must be the table's E and its seed the training seed.
        device: where to train.
    """

    def __init__(
        self, table: CurveTable, rows: Iterable[int], budget: float, *, space: Any, data: Any, protocol: RungProtocol, device: str = "cpu"
    ) -> None:
        if protocol.horizon != table.epochs:
            raise ValueError(f"the protocol's horizon {protocol.horizon} must be the table's {table.epochs} epochs")
        super().__init__(table, rows, budget)
        self.space, self.data, self.protocol, self.device = space, data, protocol, device
        self.curves = np.full(table.curves.shape, math.nan)
        self.checkpoints: dict[int, bytes] = {}
        self.wall = 0.0  # seconds really spent training, the winner's completion included
        self.failures: dict[int, str] = {}

    def _continue(self, row: int, budget: int) -> Any:
        """Trains `row` to `budget` epochs from its checkpoint; returns the model (None on failure)."""
        model = build_seeded(self.space, self.table.archs[row], self.data, self.protocol.seed)
        result = train_to_budget(model, self.data, self.protocol, budget, self.device, self.checkpoints.get(row))
        self.wall += result.seconds
        done = [h["val_accuracy"] for h in result.history]
        self.curves[row, : len(done)] = done
        if result.state != "ok" or result.checkpoint is None:
            self.failures[row] = str(result.error)
            return None
        self.checkpoints[row] = result.checkpoint
        return model

    def _train(self, row: int, budget: int) -> float:
        if math.isnan(self.curves[row, budget - 1]) and row not in self.failures:
            self._continue(row, budget)
        return float(self.curves[row, budget - 1])

    def value(self, row: int, epoch: int) -> float:
        return float(self.curves[row, epoch - 1])

    def report(self, row: int) -> float:
        """Test accuracy of `row` continued to the full E epochs (the weights after epoch E; the
        table's rows are scored at their best validation epoch, in a cosine schedule nearly always
        the last)."""
        model = self._continue(row, self.table.epochs)
        return math.nan if model is None else test_accuracy(model, self.data, self.protocol.batch_size)
