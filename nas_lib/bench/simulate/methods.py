"""The methods that need no extra package: the EHNAS recipe, random search with the same
successive halving, "train the k largest of N", and the reference CNN (no search).

Successive halving is the shared planner `nas_lib.fidelity.halving` (Jamieson & Talwalkar 2016,
arXiv:1502.07943); brackets repeat on fresh candidates until the budget or the pool runs out.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from nas_lib.bench.simulate.base import METHODS, Method, SimContext
from nas_lib.bench.simulate.features import parse_blocks
from nas_lib.fidelity.halving import HalvingConfig, SuccessiveHalving


def default_rungs(epochs: int, eta: int) -> tuple[int, ...]:
    """Two rungs, 1/eta of the table's epochs and all of them: (6, 12) for 12 epochs and eta 2.

    Measured (docs/comparison.md, "Choosing the recipe"): on the design half of the v2 CIFAR-10
    table, rungs (6, 12) at eta 2 beat (1, 3, 9) at eta 3 by 2.7-5.1 points of test accuracy and
    (3, 6, 12) by 0.4-1.4; epochs 1-3 of a 12-epoch cosine schedule rank the final accuracy
    poorly (docs/hybrid_benchmark_v2.md), so a rung there promotes the wrong architectures.
    """
    low = epochs // eta
    return (low, epochs) if low >= 1 else (epochs,)


def halving_config(budgets: tuple[int, ...] | None, eta: int, epochs: int) -> HalvingConfig:
    """The rungs asked for (default: `default_rungs`), checked against the table's epochs."""
    rungs = tuple(budgets) if budgets else default_rungs(epochs, eta)
    if rungs[-1] > epochs:
        raise ValueError(f"rungs {rungs} exceed the table's {epochs} epochs")
    return HalvingConfig(budgets=rungs, eta=eta)


def run_bracket(ctx: SimContext, rows: list[int], config: HalvingConfig) -> dict[int, float]:
    """One successive-halving bracket over pool rows; returns every row's first-rung score."""
    sh = SuccessiveHalving([str(r) for r in rows], config)
    first: dict[int, float] = {}
    while (asked := sh.ask()) is not None:
        budget, archs = asked
        scores = {a: ctx.objective.evaluate(int(a), budget) for a in archs}
        first = first or {int(a): v for a, v in scores.items()}
        sh.tell(budget, scores)
    return first


@dataclasses.dataclass(frozen=True)
class HalvingOptions:
    """Options of successive halving over uniform candidates."""

    budgets: tuple[int, ...] | None = None  # rungs in epochs; None: `default_rungs` ((6, 12) for E = 12 and eta 2)
    eta: int = 2
    bracket: int | None = None  # candidates per bracket; None: eta ** rungs (4 for two rungs at eta 2)


@METHODS.register("random_sh")
class RandomHalving(Method):
    """Random search with successive halving: each bracket draws unused pool rows uniformly."""

    name = "random_sh"
    Config: ClassVar[type] = HalvingOptions

    def run(self, ctx: SimContext) -> None:
        config = halving_config(self.config.budgets, self.config.eta, ctx.table.epochs)
        size = self.config.bracket or self.config.eta ** len(config.budgets)
        while len(left := ctx.objective.unused(ctx.pool)):
            rows = ctx.rng.choice(left, size=min(size, len(left)), replace=False)
            run_bracket(ctx, [int(r) for r in rows], config)


@dataclasses.dataclass(frozen=True)
class EhnasOptions(HalvingOptions):
    """Options of the EHNAS recipe (each piece can be switched off to measure it)."""

    # The prefilter measured on the design half of the v2 table (docs/comparison.md): flops ranks
    # its validation accuracy at Spearman 0.50 and params at -0.04; keeping the largest quarter
    # beat keeping half by 0.1-0.7 points at every budget. Against random search with the same rungs
    # it is no consistent gain (-1.3 to +1.6 points by half and budget; docs/comparison.md).
    proxy: str = "flops"  # table column ranking the pool for free (params or flops); "none": no prefilter
    keep: float = 0.25  # fraction of the pool the prefilter keeps
    strategy: str = "none"  # nas_lib.search strategy proposing each bracket (mapped onto the kept rows); "none": see `draw`
    draw: str = "uniform"  # without a strategy, how a bracket is filled from the kept rows: uniform, or proxy (largest first)
    refill: bool = True  # once the kept rows are spent, admit the next `keep` fraction (else stop, leaving budget unspent)
    fitness: str = "first"  # what the strategy is told: first (the first-rung score) or predicted (top-rung score, trained or predicted)
    min_rows: int = 6  # with fitness=predicted: rows trained to the top rung before the predictor answers (the pipeline's default)


@METHODS.register("ehnas")
class Ehnas(Method):
    """Zero-cost prefilter, then a search strategy proposing successive-halving brackets.

    The strategy is told the first-rung score of the pool row each proposal was mapped to, or
    with ``fitness="predicted"`` what the pipeline's `evaluation.predictor` tells it: the
    top-rung score where the row got there, else the learned predictor's estimate of it.
    """

    name = "ehnas"
    Config: ClassVar[type] = EhnasOptions

    def run(self, ctx: SimContext) -> None:
        c = self.config
        if c.draw not in ("uniform", "proxy"):
            raise ValueError(f"ehnas draw {c.draw!r}: use uniform or proxy")
        if c.fitness not in ("first", "predicted"):
            raise ValueError(f"ehnas fitness {c.fitness!r}: use first or predicted")
        config = halving_config(c.budgets, c.eta, ctx.table.epochs)
        size = c.bracket or c.eta ** len(config.budgets)
        ranked = prefilter(ctx, c.proxy, 1.0 if c.proxy == "none" else c.keep, every=c.refill)
        chunk = len(ranked) if c.proxy == "none" else max(1, round(c.keep * len(ctx.pool)))
        propose = (
            None if c.strategy == "none" else _StrategyProposer(ctx, c.strategy, size, config.budgets if c.fitness == "predicted" else (), c.min_rows)
        )
        for end in range(chunk, len(ranked) + chunk, chunk):
            kept = ranked[:end]
            while len(ctx.objective.unused(kept)):
                rows = self._draw(ctx, kept, size) if propose is None else propose(ctx, kept, size)
                first = run_bracket(ctx, rows, config)
                if propose is not None:
                    propose.tell(rows, first)

    def _draw(self, ctx: SimContext, kept: np.ndarray, size: int) -> list[int]:
        left = ctx.objective.unused(kept)
        if self.config.draw == "proxy":  # `kept` is in proxy order, largest first
            return [int(r) for r in left[:size]]
        return [int(r) for r in ctx.rng.choice(left, size=min(size, len(left)), replace=False)]


def prefilter(ctx: SimContext, proxy: str, keep: float, every: bool = False) -> np.ndarray:
    """The `keep` fraction of the pool with the largest `proxy` (at least one row), largest
    first; with `every`, the whole pool in that order (the caller admits it chunk by chunk)."""
    if proxy == "none":
        return ctx.pool
    if not 0 < keep <= 1:
        raise ValueError(f"prefilter keep {keep} must lie in (0, 1]")
    values = ctx.table.column(proxy)[ctx.pool]
    order = ctx.pool[np.argsort(-values, kind="stable")]
    return order if every else order[: max(1, round(keep * len(ctx.pool)))]


class _StrategyProposer:
    """Asks a `nas_lib.search` strategy for candidates and maps each onto an unused kept row."""

    def __init__(self, ctx: SimContext, name: str, size: int, predict_rungs: tuple[int, ...] = (), min_rows: int = 6) -> None:
        from nas_lib.bench.train import build_space
        from nas_lib.search import fitted_options, make_strategy

        self.space = build_space(ctx.table.space)
        self.archs = ctx.table.archs
        self.strategy = make_strategy(name, self.space, seed=ctx.seed, **fitted_options(name, {}, size))
        self.ctx, self.predict_rungs, self.min_rows = ctx, tuple(predict_rungs), min_rows

    def __call__(self, ctx: SimContext, kept: np.ndarray, size: int) -> list[int]:
        rows: list[int] = []
        for spec in self.strategy.ask(min(size, len(ctx.objective.unused(kept)))):
            left = [r for r in kept if int(r) not in rows]
            rows.append(ctx.map(parse_blocks(self.space.to_string(spec)), left))
        return rows

    def tell(self, rows: list[int], first: dict[int, float]) -> None:
        """Tells the strategy the rows it got (not its raw proposals) with their first-rung
        scores, or (with `predict_rungs`) their trained or predicted top-rung scores."""
        told = first if not self.predict_rungs else self.predicted(rows)
        self.strategy.tell([self.space.from_string(self.archs[r]) for r in rows], [told[r] for r in rows])

    def predicted(self, rows: list[int]) -> dict[int, float]:
        """`rung_fitness` over every row evaluated so far, as the pipeline's tell task computes it."""
        from nas_lib.predictor import PredictorConfig
        from nas_lib.predictor.rungs import rung_fitness

        table = self.ctx.table
        known: dict[str, dict[str, Any]] = {}
        for e in self.ctx.objective.log:
            facts = known.setdefault(
                table.archs[e.row], {"proxies": {"params": table.params[e.row] / 1e6, "flops": table.flops[e.row] / 1e6}, "rungs": {}}
            )
            facts["rungs"][str(e.budget)] = e.value
        scored = rung_fitness(self.space, known, self.predict_rungs, PredictorConfig(seed=self.ctx.seed), self.min_rows)
        return {r: scored[table.archs[r]][0] for r in rows}


@dataclasses.dataclass(frozen=True)
class LargestOptions:
    """Options of "train the k largest of N"."""

    proxy: str = "params"  # the size that orders the pool


@METHODS.register("k_largest")
class KLargest(Method):
    """Trains the pool's largest rows to full budget, largest first, while the budget lasts."""

    name = "k_largest"
    Config: ClassVar[type] = LargestOptions

    def run(self, ctx: SimContext) -> None:
        values = ctx.table.column(self.config.proxy)[ctx.pool]
        for row in ctx.pool[np.argsort(-values, kind="stable")]:
            ctx.objective.evaluate(int(row), ctx.table.epochs)


@METHODS.register("reference_cnn")
class ReferenceCNN(Method):
    """No search: train the table's reference residual CNN row(s) to full budget."""

    name = "reference_cnn"
    rows = "reference"

    def run(self, ctx: SimContext) -> None:
        for row in sorted(ctx.objective.allowed):
            ctx.objective.evaluate(row, ctx.table.epochs)


def options_of(method: type[Method]) -> dict[str, Any]:
    """The options a method takes, with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(method.Config)}
