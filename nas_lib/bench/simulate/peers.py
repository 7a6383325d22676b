"""What a user would pick instead of EHNAS: Optuna and SMAC3 over the same space.

Both propose by the space's choices (`ChoiceSpace`); each proposal is moved onto the nearest
unused pool row (`features.PoolMapper`), since only trained rows have a learning curve; once
every pool row is used, onto the nearest row at all (so a small pool does not end the search
with budget left: the row's training continues). The
packages are imported inside `run`, so this module imports without them (the `bench` extra).

- Optuna: T. Akiba, S. Sano, T. Yanase, T. Ohta, M. Koyama, "Optuna: A Next-generation
  Hyperparameter Optimization Framework", KDD 2019, arXiv:1907.10902. Define-by-run objective
  (a block's fields are asked only for the family it chose), TPE sampler, Hyperband pruner fed the
  learning curve epoch by epoch.
- SMAC3: M. Lindauer et al., "SMAC3: A Versatile Bayesian Optimization Package for
  Hyperparameter Optimization", JMLR 2022, arXiv:2109.09831. Multi-fidelity facade (random forest
  + Hyperband intensifier, i.e. BOHB-like) with budgets in epochs, driven by ask/tell.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from nas_lib.bench.simulate.base import METHODS, Method, SimContext
from nas_lib.bench.simulate.features import ChoiceSpace
from nas_lib.bench.simulate.objective import BudgetExhausted


def _choices(ctx: SimContext) -> ChoiceSpace:
    from nas_lib.bench.train import build_space

    return ChoiceSpace.from_space(build_space(ctx.table.space))


@dataclasses.dataclass(frozen=True)
class OptunaOptions:
    """Options of Optuna's TPE + Hyperband pruning."""

    sampler: str = "tpe"  # "tpe", or "random": the control that shows what the pool mapping leaves of TPE's guidance
    eta: int = 3  # Hyperband reduction factor
    startup: int = 10  # TPE's random trials before modelling (Optuna's default)


@METHODS.register("optuna_tpe_hyperband")
class OptunaTPEHyperband(Method):
    """Optuna study, one trial per mapped pool row, pruned on intermediate validation accuracy."""

    name = "optuna_tpe_hyperband"
    requires = ("optuna",)
    Config: ClassVar[type] = OptunaOptions

    def run(self, ctx: SimContext) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        c = self.config
        if c.sampler == "tpe":
            sampler: Any = optuna.samplers.TPESampler(seed=ctx.seed, n_startup_trials=c.startup)
        elif c.sampler == "random":
            sampler = optuna.samplers.RandomSampler(seed=ctx.seed)
        else:
            raise ValueError(f"optuna sampler {c.sampler!r}: use tpe or random")
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=ctx.table.epochs, reduction_factor=c.eta)
        # a fixed name: the Hyperband pruner assigns trials to brackets by a hash of the study name
        study = optuna.create_study(study_name=f"sim-{ctx.seed}", direction="maximize", sampler=sampler, pruner=pruner)
        space = _choices(ctx)

        def objective(trial: Any) -> float:
            try:
                row = ctx.map(space.blocks(lambda name, options: trial.suggest_categorical(name, list(options))), reuse=True)
                value = 0.0
                for epoch in range(1, ctx.table.epochs + 1):
                    value = ctx.objective.evaluate(row, epoch)
                    trial.report(value, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return value
            except BudgetExhausted:
                trial.study.stop()
                raise optuna.TrialPruned() from None

        study.optimize(objective, n_trials=10 * len(ctx.pool) + 10)


@dataclasses.dataclass(frozen=True)
class SmacOptions:
    """Options of SMAC3's multi-fidelity facade."""

    eta: int = 3  # Hyperband reduction factor
    initial: int = 10  # random configurations before the forest (SMAC's default, 10 per hyperparameter, would be ~800 here)
    challengers: int = 1000  # random configurations the acquisition search ranks per ask (SMAC's default 10000 costs ~2 s an ask here)


@METHODS.register("smac_mf")
class SmacMultiFidelity(Method):
    """SMAC3 MultiFidelityFacade with its Hyperband intensifier over an unconditional ConfigSpace
    of the space's choices (blocks past the chosen depth are ignored)."""

    name = "smac_mf"
    requires = ("smac", "ConfigSpace")
    Config: ClassVar[type] = SmacOptions

    def run(self, ctx: SimContext) -> None:
        import joblib
        from ConfigSpace import Categorical, ConfigurationSpace
        from smac import MultiFidelityFacade, Scenario
        from smac.runhistory.dataclasses import TrialValue

        space = _choices(ctx)
        cs = ConfigurationSpace(seed=ctx.seed)
        cs.add([Categorical(name, list(options)) for name, options in space.flat()])
        rows: dict[Any, int] = {}  # config -> its pool row (fixed for every budget SMAC asks)
        with tempfile.TemporaryDirectory(prefix="ehnas-smac-") as out, joblib.parallel_config(backend="sequential"):
            scenario = Scenario(
                cs, deterministic=True, n_trials=100_000, min_budget=1, max_budget=ctx.table.epochs, seed=ctx.seed, output_directory=Path(out)
            )
            smac = MultiFidelityFacade(
                scenario,
                target_function=lambda config, seed=0, budget=1: 0.0,  # never called: ask/tell
                intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=self.config.eta),
                initial_design=MultiFidelityFacade.get_initial_design(scenario, n_configs=self.config.initial),
                acquisition_maximizer=MultiFidelityFacade.get_acquisition_maximizer(scenario, challengers=self.config.challengers),
                overwrite=True,
                logging_level=logging.ERROR,
            )
            free = 0  # consecutive asks that cost nothing (a config and budget already evaluated): 50 end the run
            while free < 50:
                info = smac.ask()
                key = tuple(sorted(dict(info.config).items()))
                if key not in rows:
                    rows[key] = ctx.map(space.blocks(lambda name, options, cfg=dict(info.config): cfg[name]), reuse=True)
                budget = max(1, min(ctx.table.epochs, round(float(info.budget or ctx.table.epochs))))
                free = free + 1 if ctx.objective.cost(rows[key], budget) == 0 else 0
                value = ctx.objective.evaluate(rows[key], budget)
                smac.tell(info, TrialValue(cost=1.0 - value))
