"""Methods of the tabular comparison, registered by name, and one run of a method on one seed.

A method gets a `SimContext` (its pool, the budgeted objective, a seeded generator, the pool
mapper) and spends the budget as it likes; it never picks its answer itself: every method's
winner is the objective's incumbent (the best validation accuracy at the largest budget any row
reached), and the winner is reported by its table score (test accuracy), so selection is on
validation and the report on test for every method alike.
"""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from nas_lib.bench.simulate.features import Block, PoolMapper
from nas_lib.bench.simulate.objective import BudgetExhausted, TabularObjective
from nas_lib.bench.simulate.table import CurveTable
from nas_lib.bench.train import REFERENCE
from nas_lib.registry import Registry


@dataclass(frozen=True)
class NoOptions:
    """Configuration of a method that takes no options."""


@dataclass
class SimContext:
    """What a method sees during one seed."""

    table: CurveTable
    pool: np.ndarray
    objective: TabularObjective
    mapper: PoolMapper
    rng: np.random.Generator
    seed: int
    distances: list[float] = field(default_factory=list)

    def map(self, blocks: Sequence[Block], candidates: Sequence[int] | None = None, reuse: bool = False) -> int:
        """The nearest pool row (of `candidates`, default the pool) not evaluated yet; the
        distance is recorded. With `reuse`, once every candidate has been evaluated, the nearest
        of them all (its training continues from where it stopped).

        Raises:
            BudgetExhausted: every candidate row has been evaluated and `reuse` is off.
        """
        rows = self.pool if candidates is None else np.asarray(candidates, dtype=int)
        left = self.objective.unused(rows)
        if len(left) == 0 and not reuse:
            raise BudgetExhausted("every pool row has been evaluated")
        row, distance = self.mapper.nearest(blocks, left if len(left) else rows)
        self.distances.append(distance)
        return row


class Method(ABC):
    """A way to spend the budget. Subclasses set `name`, `Config` and implement `run`.

    Args:
        **options: fields of the method's `Config` (unknown names raise TypeError).
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = NoOptions
    rows: ClassVar[str] = "pool"  # which rows it may train: "pool", or "reference" (no search)
    requires: ClassVar[tuple[str, ...]] = ()  # packages it imports when it runs (the `bench` extra)

    def __init__(self, **options: Any) -> None:
        try:
            self.config = self.Config(**options)
        except TypeError as err:
            known = ", ".join(f.name for f in dataclasses.fields(self.Config)) or "(none)"
            raise TypeError(f"method {self.name!r}: {err}; known options: {known}") from None

    @abstractmethod
    def run(self, ctx: SimContext) -> None:
        """Evaluates rows through `ctx.objective` until done or `BudgetExhausted`."""


METHODS: Registry[type[Method]] = Registry("comparison method")


def make_method(name: str, **options: Any) -> Method:
    """Builds the registered method `name` (KeyError listing the known names)."""
    return METHODS.get(name)(**options)


@dataclass(frozen=True)
class MethodRun:
    """One method on one seed: its winner and what it cost."""

    method: str
    seed: int
    winner: str
    row: int
    val: float  # the winner's validation accuracy at the budget it was chosen at
    score: float  # the reported (test) accuracy of the winner, from the table
    percentile: float  # fraction of the table's sample rows scoring below the winner
    spent: float  # simulated seconds charged
    budget: float
    evaluations: int
    full_trainings: int  # rows trained to the full E epochs
    mapped: int  # proposals moved onto a pool row
    mean_distance: float  # mean feature distance of those moves
    overhead_seconds: float  # real seconds the method's own code took


def pool_for(rows: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """The seed's pool: `size` of `rows` drawn without replacement, or all of them."""
    if size is None or size >= len(rows):
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=size, replace=False))


ObjectiveFactory = Callable[[CurveTable, Iterable[int], float], TabularObjective]


def run_method(
    method: Method,
    table: CurveTable,
    pool: np.ndarray,
    budget: float,
    seed: int,
    mapper: PoolMapper,
    objective_factory: ObjectiveFactory = TabularObjective,
) -> MethodRun:
    """Runs `method` on one seed's pool and budget and scores its winner (by the objective's
    `report`: the table's score, or a real training's test accuracy for `TrainingObjective`)."""
    rows = table.rows(REFERENCE) if method.rows == "reference" else pool
    objective = objective_factory(table, rows, budget)
    ctx = SimContext(table, np.asarray(pool, dtype=int), objective, mapper, np.random.default_rng(seed), seed)
    start = time.perf_counter()
    try:
        method.run(ctx)
    except BudgetExhausted:
        pass  # the method stops here; its answer is the incumbent so far
    overhead = time.perf_counter() - start
    row = objective.incumbent()
    samples = table.score[table.rows()]
    score = math.nan if row is None else objective.report(row)
    top = max(objective.trained.values(), default=0)
    return MethodRun(
        method=method.name,
        seed=seed,
        winner="" if row is None else table.archs[row],
        row=-1 if row is None else row,
        val=math.nan if row is None else objective.value(row, top),
        score=score,
        percentile=math.nan if row is None else float((samples < score).mean()),
        spent=objective.spent,
        budget=budget,
        evaluations=len(objective.log),
        full_trainings=sum(e == table.epochs for e in objective.trained.values()),
        mapped=len(ctx.distances),
        mean_distance=float(np.mean(ctx.distances)) if ctx.distances else math.nan,
        overhead_seconds=overhead,
    )
