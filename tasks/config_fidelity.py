"""`evaluation.fidelity`: training-based fidelities (successive halving, Hyperband) in the config.

Kept apart from `tasks.config` so that module stays one screenful per section; `EvaluationConfig`
holds it as its ``fidelity`` field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FidelityConfig(BaseModel):
    """How architectures are scored by short trainings on top of the proxies (docs/multi_fidelity.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Off by default: the proxies rank the embedded digits run in seconds, rungs train for minutes.
    kind: Literal["none", "halving", "hyperband"] = Field(
        "none",
        description="none (proxies only), halving (successive halving over the budgets) or hyperband (its brackets from the first "
        "budget to the last); with halving/hyperband the search fitness is the validation accuracy at the highest rung reached.",
    )
    # The default rungs are the rule measured on the v2 CIFAR-10 table (docs/comparison.md,
    # "Choosing the recipe"): two rungs at 1/eta of the finalists' training and all of it, eta 2,
    # beat rungs (1, 3, 9) at eta 3 by 2.7-5.1 points of test accuracy at equal budget, because
    # the first epochs of a cosine schedule rank the final accuracy poorly.
    budgets: list[int] | None = Field(
        None,
        description="Epochs of the rungs, strictly increasing (Hyperband uses the first and the last); "
        "None = training.epochs // eta and training.epochs.",
    )
    eta: int = Field(2, ge=2, description="Each rung keeps the best 1/eta of the previous one (at least one).")
    # long: on the digits run a rung is then a checkpoint of the schedule the finalists would see,
    # and a promoted architecture continues from it instead of paying its first epochs again.
    schedule: Literal["long", "short"] = Field(
        "long",
        description="long: one cosine schedule over the largest budget, each rung a checkpoint of it, promoted architectures continue; "
        "short: each rung a complete cosine schedule of its own budget, trained from scratch.",
    )
    prefilter_keep: int | None = Field(
        None, ge=1, description="Train only this many of each batch's best by the first proxy (None = train all); the rest count as failed."
    )
    batch_size: int = Field(1, ge=1, description="Rung trainings per Prefect task (one keeps every worker busy; trainings take seconds).")

    @model_validator(mode="after")
    def _rungs_ok(self) -> FidelityConfig:
        if self.budgets is not None and (not self.budgets or self.budgets[0] < 1 or any(b <= a for a, b in zip(self.budgets, self.budgets[1:]))):
            raise ValueError(f"evaluation.fidelity.budgets {self.budgets} must be positive and strictly increasing")
        return self

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The rungs' epochs: `budgets`, or 1/eta of the finalists' `epochs` and all of them."""
        if self.budgets is not None:
            return tuple(self.budgets)
        low = epochs // self.eta
        return (low, epochs) if low >= 1 else (epochs,)


class PredictorSection(BaseModel):
    """`evaluation.predictor`: the learned predictor as the search fitness of a multi-fidelity run
    (docs/predictor.md): an architecture stopped at a low rung is ranked by its predicted top-rung
    score instead of its low-rung accuracy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Rank architectures below the top rung by their predicted top-rung score (needs evaluation.fidelity).")
    model: str = Field("forest", description="Predictor model (nas_lib.predictor.MODELS: forest, gbt, ridge, gp, mix).")
    min_rows: int = Field(
        6, ge=3, description="Architectures trained to the top rung before the predictor answers (until then: the highest rung's score)."
    )

    @model_validator(mode="after")
    def _model_known(self) -> PredictorSection:
        from nas_lib.predictor import MODELS

        if self.model not in MODELS:
            raise ValueError(f"evaluation.predictor.model {self.model!r} is not one of {', '.join(MODELS.names())}")
        return self
