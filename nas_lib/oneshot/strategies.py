"""One-shot methods behind the ask/tell `Strategy` interface, so `ehnas bench search` and the
pipeline (``search.strategy``) run them.

The first `ask` trains (or resumes, or loads from the checkpoint cache) the supernet and asks
the method's answer.

- On NB201: the discretised cell for ``darts``, ``darts2`` and ``drnas``, the best of sampled
  cells by inherited-weight accuracy for ``spos`` and ``enas`` (uniform samples for SPOS, the
  controller's greedy cell and samples for ENAS). The table's fitness is recorded but never
  steers the answer, which stays the one-shot cell (`best`), so the benchmark judges the method
  alone; a budget of 1 query is the natural setting, and any further queries are uniform samples
  that do not change the answer.
- On the hybrid space (``spos``, ``enas`` and ``darts``, the last as GDAS' sampled relaxation:
  `nas_lib.oneshot.hybrid`): ``candidates`` architectures (SPOS: depth-stratified samples; ENAS:
  the controller's greedy choice and samples; GDAS: the argmax path and draws of its policy) are
  ranked by inherited-weight accuracy once, and every `ask` hands out the next ones
  of that ranking, best first (uniform samples once it is spent). In the
  pipeline the evaluation then scores them like any other strategy's, so the supernet's ranking
  decides what the run's budget is spent on.

The images: ``data`` (a data reference: ``kind``, ``path``, ``image_size``, ``val_fraction``,
``seed``, ``max_items``; the pipeline passes its run's), else ``images`` (a cifar10_npz file)
split in half. The supernet trains on the train part and scores on the validation part.

They live in their own registry, `ONESHOT_STRATEGIES`, not in `nas_lib.search.STRATEGIES`: they
need images and minutes of training, so they cannot take part in the table-speed tests and
``--strategies all`` that every ask/tell strategy joins. `nas_lib.search.strategy_class` looks
names up in both.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

from nas_lib.registry import Registry
from nas_lib.search.base import Spec, Strategy
from nas_lib.space.base import SearchSpace
from nas_lib.space.hybrid import HybridSpace
from nas_lib.space.nb201 import NB201Space

ONESHOT_STRATEGIES: Registry[type[Strategy]] = Registry("one-shot strategy")
HYBRID_METHODS = {"spos": "hybrid_spos", "enas": "hybrid_enas", "darts": "hybrid_gdas"}  # strategy -> its method on the hybrid space


@dataclasses.dataclass(frozen=True)
class OneShotOptions:
    """Options of a one-shot strategy (the defaults are the scale measured in docs/search.md)."""

    images: str = "../shared/data/cifar10/cifar10_5000.npz"  # cifar10_npz: its 'train' rows are split in half
    data: dict[str, Any] | None = None  # a data reference (load_dataset's arguments); replaces images when set
    image_size: int = 16  # 32 px costs about 4x the time
    max_items: int | None = None  # stratified cap on the images before the split (tests)
    cache_dir: str | None = "~/.cache/ehnas/oneshot"  # checkpoint folders (like the LLM cache); None: none
    channels: int = 8
    cells_per_stage: int = 1
    epochs: int = 10
    batch_size: int = 64
    arch_lr: float = 3e-4
    candidates: int = 100  # spos: architectures sampled and scored for the answer; hybrid (spos, enas, darts): for the ranking
    optimizer: str | None = None  # weights: None = "sgd" on NB201 (DARTS'), "adamw" on the hybrid space (the v2 table's)
    lr: float | None = None  # None = 0.025 (sgd) or 1e-3 (adamw; 3e-3 trained the hybrid supernet no better, docs/search.md)
    weight_decay: float | None = None  # None = 3e-4 (sgd) or 5e-4 (adamw)
    sandwich: bool = True  # spos: also train the largest and smallest (hybrid: widest and narrowest) of each path
    sampling: str = "decision"  # hybrid spos: paths uniform per "decision" or per "architecture" (OneShotConfig)

    def __post_init__(self) -> None:
        """Bad values fail here, when the pipeline's config is checked, not minutes into a run."""
        for name in ("channels", "cells_per_stage", "epochs", "batch_size", "candidates", "image_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.optimizer not in (None, "sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.sampling not in ("architecture", "decision"):
            raise ValueError(f"sampling must be 'architecture' or 'decision', got {self.sampling!r}")
        if self.data is not None and "kind" not in self.data:
            raise ValueError("data must be a data reference with a 'kind' (load_dataset's arguments)")


class OneShotStrategy(Strategy):
    """Trains the supernet of `method` on the first `ask`; its answer is the one-shot cell."""

    method: ClassVar[str] = ""
    takes_data: ClassVar[bool] = True  # the pipeline passes its run's data reference as the `data` option
    Config = OneShotOptions

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        hybrid = self.method in HYBRID_METHODS and isinstance(space, HybridSpace)
        if not (isinstance(space, NB201Space) or hybrid):
            raise TypeError(
                f"strategy {self.name!r} searches the NB201 cell space"
                + (" or the hybrid space" if self.method in HYBRID_METHODS else "")
                + f", got {type(space).__name__}"
            )
        super().__init__(space, seed, **options)
        self.hybrid = hybrid
        self.answer: Spec | None = None
        self.ranked: list[str] | None = None  # hybrid: the ranking still to hand out, best first
        self.outcome: Any = None  # the last TrainOutcome (None after a resume from state)

    def _propose(self, n: int) -> list[Spec]:
        specs: list[Spec] = []
        if self.answer is None:
            if self.hybrid:
                self.ranked = self.search_ranking()
            self.answer = self.space.from_string(self.ranked.pop(0) if self.ranked else self.search())
            specs.append(self.answer)
        while self.ranked and len(specs) < n:
            specs.append(self.space.from_string(self.ranked.pop(0)))
        while len(specs) < n:
            specs.append(self.fresh(lambda: self.space.sample(self.rng)))
        return specs

    def train(self) -> Any:
        """Trains (or resumes, or loads) the supernet; the `TrainOutcome`."""
        from nas_lib.data.datasets import load_dataset, load_reference
        from nas_lib.oneshot.trainer import OneShotConfig, train_supernet

        c = self.config
        if c.data is not None:
            data = load_reference(c.data)
        else:
            data = load_dataset("cifar10_npz", c.images, image_size=c.image_size, val_fraction=0.5, seed=0, max_items=c.max_items)
        optimizer = c.optimizer or ("adamw" if self.hybrid else "sgd")
        adamw = optimizer == "adamw"
        config = OneShotConfig(
            method=HYBRID_METHODS[self.method] if self.hybrid else self.method,
            optimizer=optimizer,
            lr=c.lr if c.lr is not None else (1e-3 if adamw else 0.025),
            weight_decay=c.weight_decay if c.weight_decay is not None else (5e-4 if adamw else 3e-4),
            channels=c.channels,
            cells_per_stage=c.cells_per_stage,
            epochs=c.epochs,
            batch_size=c.batch_size,
            arch_lr=c.arch_lr,
            sandwich=c.sandwich,
            sampling=c.sampling,
            seed=self.seed,
        )
        cache = None if c.cache_dir is None else Path(c.cache_dir).expanduser()
        self.outcome = train_supernet(self.space, data, config, cache)
        return self.outcome

    def search(self) -> str:
        """Trains (or loads) the supernet and returns the method's cell as an NB201 string."""
        method = self.train().method
        cell = method.answer(self.config.candidates) if self.method == "spos" else method.answer()
        return self.space.to_string(cell)

    def search_ranking(self) -> list[str]:
        """Hybrid: trains (or loads) the supernet and ranks ``candidates`` sampled architectures
        by inherited-weight accuracy, best first."""
        method = self.train().method
        return [self.space.to_string(arch) for arch, _ in method.ranking(self.config.candidates)]

    def best(self) -> tuple[Spec, float]:
        """The one-shot cell and the fitness it was told (NaN before it was told)."""
        if self.answer is None:
            raise RuntimeError(f"strategy {self.name!r} has not searched yet")
        told = [f for s, f in self.history if s == self.answer]
        return self.answer, (told[0] if told else math.nan)

    def _extra_state(self) -> dict[str, Any]:
        return {"answer": None if self.answer is None else self.space.to_string(self.answer), "ranked": self.ranked}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        answer = state.get("answer")
        self.answer = None if answer is None else self.space.from_string(answer)
        self.ranked = state.get("ranked")


@ONESHOT_STRATEGIES.register("darts")
class DARTSStrategy(OneShotStrategy):
    """First-order DARTS (Liu et al., ICLR 2019, arXiv 1806.09055); see `nas_lib.oneshot.darts`. On the
    hybrid space its sampled variant GDAS (arXiv 1910.04465); see `nas_lib.oneshot.hybrid`."""

    name = method = "darts"


@ONESHOT_STRATEGIES.register("darts2")
class DARTSSecondOrderStrategy(OneShotStrategy):
    """Second-order DARTS (arXiv 1806.09055); see `nas_lib.oneshot.darts`."""

    name = method = "darts2"


@ONESHOT_STRATEGIES.register("drnas")
class DrNASStrategy(OneShotStrategy):
    """DrNAS (Chen et al., ICLR 2021, arXiv 2006.10355); see `nas_lib.oneshot.drnas`."""

    name = method = "drnas"


@ONESHOT_STRATEGIES.register("spos")
class SPOSStrategy(OneShotStrategy):
    """SPOS with the sandwich rule (Guo et al., ECCV 2020, arXiv 1904.00420); see `nas_lib.oneshot.spos`
    (NB201) and `nas_lib.oneshot.hybrid` (hybrid)."""

    name = method = "spos"


@ONESHOT_STRATEGIES.register("enas")
class ENASStrategy(OneShotStrategy):
    """ENAS (Pham et al., ICML 2018, arXiv 1802.03268); see `nas_lib.oneshot.enas` (NB201) and
    `nas_lib.oneshot.hybrid` (hybrid)."""

    name = method = "enas"
