"""Tabular simulation of multi-fidelity search on a trained table (HPOBench / YAHPO Gym style).

`load_curve_table` reads a table as learning curves; `TabularObjective` replays them under a
wall-clock budget; methods registered in `METHODS` (the EHNAS recipe and what a user would pick
instead) spend the budget; `run_method` scores a method's winner by its test accuracy. `real.TrainingObjective` trains
instead of looking up, for the real runs that confirm a simulation.
"""

from __future__ import annotations

from nas_lib.bench.simulate import methods, peers  # noqa: F401  (modules register themselves)
from nas_lib.bench.simulate.base import METHODS, Method, MethodRun, SimContext, make_method, pool_for, run_method
from nas_lib.bench.simulate.features import ChoiceSpace, PoolMapper
from nas_lib.bench.simulate.objective import BudgetExhausted, Evaluation, TabularObjective
from nas_lib.bench.simulate.table import CurveTable, load_curve_table

__all__ = [
    "METHODS",
    "BudgetExhausted",
    "ChoiceSpace",
    "CurveTable",
    "Evaluation",
    "Method",
    "MethodRun",
    "PoolMapper",
    "SimContext",
    "TabularObjective",
    "load_curve_table",
    "make_method",
    "pool_for",
    "run_method",
]
