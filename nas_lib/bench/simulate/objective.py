"""The tabular multi-fidelity objective: training is replaced by a table lookup that costs time.

Evaluating row a at budget b (epochs, 1 <= b <= E) returns `curves[a, b-1]`, the validation
accuracy after epoch b of the row's recorded E-epoch schedule, and charges `seconds[a] * b / E`
simulated seconds. Training continues from the furthest epoch a row has reached, so promoting a
row from budget b1 to b2 charges only `seconds[a] * (b2 - b1) / E`, and asking for a budget it has
already passed is free. An evaluation that would overrun the wall-clock budget is refused with
`BudgetExhausted` and charges nothing: the method stops there. One worker, no parallelism.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nas_lib.bench.simulate.table import CurveTable


class BudgetExhausted(Exception):
    """The next evaluation does not fit in the remaining wall-clock budget."""


@dataclass(frozen=True)
class Evaluation:
    """One lookup: row, budget (epochs), the validation accuracy returned and its charge."""

    row: int
    budget: int
    value: float
    cost: float


class TabularObjective:
    """Budgeted lookups into a `CurveTable`, restricted to the rows a method may train.

    Args:
        table: the learning curves.
        rows: the rows a method may evaluate (its pool, or the reference rows).
        budget: simulated wall-clock seconds available.
    """

    def __init__(self, table: CurveTable, rows: Iterable[int], budget: float) -> None:
        self.table = table
        self.allowed = frozenset(int(r) for r in rows)
        self.budget = float(budget)
        self.spent = 0.0
        self.trained: dict[int, int] = {}  # row -> furthest epoch reached
        self.log: list[Evaluation] = []

    @property
    def remaining(self) -> float:
        """Seconds left."""
        return self.budget - self.spent

    def cost(self, row: int, budget: int) -> float:
        """Seconds that evaluating `row` at `budget` would charge now (0 when already reached)."""
        done = self.trained.get(int(row), 0)
        return float(self.table.seconds[row]) * max(0, int(budget) - done) / self.table.epochs

    def evaluate(self, row: int, budget: int) -> float:
        """Validation accuracy of `row` after `budget` epochs, charging the continuation cost.

        Raises:
            KeyError: `row` is not one this objective may evaluate.
            ValueError: `budget` is outside 1..E.
            BudgetExhausted: the charge would overrun the budget (nothing is charged).
        """
        row, budget = int(row), int(budget)
        if row not in self.allowed:
            raise KeyError(f"row {row} is not in this objective's pool")
        if not 1 <= budget <= self.table.epochs:
            raise ValueError(f"budget {budget} is outside 1..{self.table.epochs} epochs")
        cost = self.cost(row, budget)
        if self.spent + cost > self.budget * (1 + 1e-12):
            raise BudgetExhausted(f"{cost:.1f} s needed, {self.remaining:.1f} s left")
        value = self._train(row, budget)
        self.spent += cost
        self.trained[row] = max(self.trained.get(row, 0), budget)
        self.log.append(Evaluation(row, budget, value, cost))
        return value

    def _train(self, row: int, budget: int) -> float:
        """The validation accuracy of `row` after `budget` epochs: here the table's record."""
        return float(self.table.curves[row, budget - 1])

    def value(self, row: int, epoch: int) -> float:
        """The validation accuracy `row` had after `epoch` epochs (evaluated rows only)."""
        return float(self.table.curves[row, epoch - 1])

    def report(self, row: int) -> float:
        """The winner's reported score: its table score (test accuracy after the full E
        epochs, seed-averaged where the table allows), never charged."""
        return float(self.table.score[row])

    def incumbent(self) -> int | None:
        """The answer of any method: among the rows evaluated at the largest budget any row
        reached, the one with the best validation accuracy there (None before any lookup)."""
        reached = {row: epochs for row, epochs in self.trained.items()}
        if not reached:
            return None
        top = max(reached.values())
        ranked = [(self.value(row, top), -row) for row, epochs in reached.items() if epochs == top]
        ranked = [r for r in ranked if not math.isnan(r[0])]
        return -max(ranked)[1] if ranked else None

    def unused(self, rows: Iterable[int]) -> np.ndarray:
        """The rows of `rows` never evaluated yet."""
        return np.array([r for r in rows if int(r) not in self.trained], dtype=int)
