"""One-shot methods behind the ask/tell `Strategy` interface, so `ehnas bench search` runs them.

The first `ask` trains (or resumes, or loads from the checkpoint cache) the supernet and asks
the method's answer: the discretised cell for ``darts``, ``darts2`` and ``drnas``, the best of
sampled cells by inherited-weight accuracy for ``spos`` and ``enas`` (uniform samples for SPOS,
the controller's greedy cell and samples for ENAS). The table's fitness is recorded but
never steers the answer, which stays the one-shot cell (`best`), so the benchmark judges the
method alone; a budget of 1 query is the natural setting, and any further queries are uniform
samples that do not change the answer.

They live in their own registry, `ONESHOT_STRATEGIES`, not in `nas_lib.search.STRATEGIES`: they
need images and minutes of training, so they cannot take part in the table-speed tests and
``--strategies all`` that every ask/tell strategy joins. `nas_lib.bench.search` looks names up
in both registries.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

from nas_lib.registry import Registry
from nas_lib.search.base import Spec, Strategy
from nas_lib.space.base import SearchSpace
from nas_lib.space.nb201 import NB201Space

ONESHOT_STRATEGIES: Registry[type[Strategy]] = Registry("one-shot strategy")


@dataclasses.dataclass(frozen=True)
class OneShotOptions:
    """Options of a one-shot strategy (the defaults are the scale measured in docs/search.md)."""

    images: str = "../shared/data/cifar10/cifar10_5000.npz"  # cifar10_npz: its 'train' rows are split in half
    image_size: int = 16  # 32 px costs about 4x the time
    max_items: int | None = None  # stratified cap on the images before the split (tests)
    cache_dir: str | None = "~/.cache/ehnas/oneshot"  # checkpoint folders (like the LLM cache); None: none
    channels: int = 8
    cells_per_stage: int = 1
    epochs: int = 10
    batch_size: int = 64
    arch_lr: float = 3e-4
    candidates: int = 100  # spos: cells sampled and scored for the answer


class OneShotStrategy(Strategy):
    """Trains the supernet of `method` on the first `ask`; its answer is the one-shot cell."""

    method: ClassVar[str] = ""
    Config = OneShotOptions

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        if not isinstance(space, NB201Space):
            raise TypeError(f"strategy {self.name!r} searches the NB201 cell space only, got {type(space).__name__}")
        super().__init__(space, seed, **options)
        self.answer: Spec | None = None
        self.outcome: Any = None  # the last TrainOutcome (None after a resume from state)

    def _propose(self, n: int) -> list[Spec]:
        specs: list[Spec] = []
        if self.answer is None:
            self.answer = self.space.from_string(self.search())
            specs.append(self.answer)
        while len(specs) < n:
            specs.append(self.fresh(lambda: self.space.sample(self.rng)))
        return specs

    def search(self) -> str:
        """Trains (or loads) the supernet and returns the method's cell as an NB201 string."""
        from nas_lib.data.datasets import load_dataset
        from nas_lib.oneshot.trainer import OneShotConfig, train_supernet

        c = self.config
        data = load_dataset("cifar10_npz", c.images, image_size=c.image_size, val_fraction=0.5, seed=0, max_items=c.max_items)
        config = OneShotConfig(
            method=self.method,
            channels=c.channels,
            cells_per_stage=c.cells_per_stage,
            epochs=c.epochs,
            batch_size=c.batch_size,
            arch_lr=c.arch_lr,
            seed=self.seed,
        )
        cache = None if c.cache_dir is None else Path(c.cache_dir).expanduser()
        self.outcome = train_supernet(self.space, data, config, cache)  # type: ignore[arg-type]
        method = self.outcome.method
        cell = method.answer(c.candidates) if self.method == "spos" else method.answer()
        return self.space.to_string(cell)

    def best(self) -> tuple[Spec, float]:
        """The one-shot cell and the fitness it was told (NaN before it was told)."""
        if self.answer is None:
            raise RuntimeError(f"strategy {self.name!r} has not searched yet")
        told = [f for s, f in self.history if s == self.answer]
        return self.answer, (told[0] if told else math.nan)

    def _extra_state(self) -> dict[str, Any]:
        return {"answer": None if self.answer is None else self.space.to_string(self.answer)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        answer = state.get("answer")
        self.answer = None if answer is None else self.space.from_string(answer)


@ONESHOT_STRATEGIES.register("darts")
class DARTSStrategy(OneShotStrategy):
    """First-order DARTS (Liu et al., ICLR 2019, arXiv 1806.09055); see `nas_lib.oneshot.darts`."""

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
    """SPOS with the sandwich rule (Guo et al., ECCV 2020, arXiv 1904.00420); see `nas_lib.oneshot.spos`."""

    name = method = "spos"


@ONESHOT_STRATEGIES.register("enas")
class ENASStrategy(OneShotStrategy):
    """ENAS (Pham et al., ICML 2018, arXiv 1802.03268); see `nas_lib.oneshot.enas`."""

    name = method = "enas"
