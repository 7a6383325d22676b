"""The ask/tell interface every search strategy implements.

A strategy proposes architectures (`ask`), is told their fitness (`tell`, higher is better, NaN
for a failed evaluation) and names its answer (`best`). It never evaluates anything itself, so
the same strategy runs against a benchmark table, a training-free proxy or real training, on any
`SearchSpace` (hybrid or NB201). Its whole state, random generator included, round-trips through
JSON (`state_dict` / `load_state_dict`), so a resumed search continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar

import numpy as np

from nas_lib.space.base import SearchSpace

Spec = Hashable


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Configuration of a strategy that takes no options."""


class Strategy(ABC):
    """Base class: bookkeeping of history, de-duplication, answer and serialisation.

    Subclasses set `name`, `Config` (a frozen dataclass of their options) and implement
    `_propose(n)`; they override `_observe`, `_extra_state` and `_load_extra_state` when they
    keep state beyond the history.

    Args:
        space: the search space to search.
        seed: seed of the strategy's own `numpy.random.Generator`.
        **options: fields of the strategy's `Config` (unknown names raise TypeError).
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = NoOptions
    # How many tries to find a spec not asked before, before accepting a repeat.
    max_fresh_tries: ClassVar[int] = 200
    # The option holding how many evaluations the strategy needs before it stops sampling
    # uniformly (its random warm-up); None when it has none.
    warmup_option: ClassVar[str | None] = None

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        self.space = space
        self.seed = int(seed)
        try:
            self.config = self.Config(**options)
        except TypeError as err:
            known = ", ".join(f.name for f in dataclasses.fields(self.Config)) or "(none)"
            raise TypeError(f"strategy {self.name!r}: {err}; known options: {known}") from None
        self.rng = np.random.default_rng(self.seed)
        self.history: list[tuple[Spec, float]] = []
        self._seen: set[str] = set()

    # -- the public protocol --------------------------------------------------------------------
    def ask(self, n: int) -> list[Spec]:
        """Proposes `n` candidates, none asked before while the space has unseen ones."""
        if n < 0:
            raise ValueError("ask needs n >= 0")
        specs = self._propose(n) if n else []
        for spec in specs:
            self._seen.add(self.space.to_string(spec))
        return specs

    def tell(self, specs: Sequence[Spec], fitnesses: Sequence[float], extra: Sequence[Any] | None = None) -> None:
        """Records the fitness of evaluated specs (higher is better; NaN marks a failure).

        Args:
            specs: the evaluated architectures (normally the ones `ask` returned).
            fitnesses: one float per spec.
            extra: optional per-spec side information (used by multi-objective strategies).
        """
        if len(specs) != len(fitnesses):
            raise ValueError(f"tell got {len(specs)} specs but {len(fitnesses)} fitnesses")
        if extra is not None and len(extra) != len(specs):
            raise ValueError(f"tell got {len(specs)} specs but {len(extra)} extra entries")
        values = [float(f) for f in fitnesses]
        for spec, value in zip(specs, values):
            self.history.append((spec, value))
            self._seen.add(self.space.to_string(spec))
        self._observe(list(specs), values, None if extra is None else list(extra))

    def best(self) -> tuple[Spec, float]:
        """The strategy's answer: by default the best spec evaluated so far."""
        scored = [(spec, f) for spec, f in self.history if not math.isnan(f)]
        if not scored:
            raise RuntimeError(f"strategy {self.name!r} has no successful evaluation yet")
        return max(scored, key=lambda item: item[1])

    def front(self) -> list[dict[str, Any]]:
        """A multi-objective strategy's answer, its non-dominated evaluated specs as rows
        (``arch``, ``arch_id``, ``fitness``, ``cost``, ``cost_name``); [] for a single-objective one."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (specs as canonical strings, NaN as null)."""
        return {
            "strategy": self.name,
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "rng": self.rng.bit_generator.state,
            "history": [[self.space.to_string(s), None if math.isnan(f) else f] for s, f in self.history],
            "seen": sorted(self._seen),
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a snapshot taken by `state_dict` (from the same strategy and space)."""
        if state.get("strategy") != self.name:
            raise ValueError(f"state of strategy {state.get('strategy')!r} given to {self.name!r}")
        self.seed = int(state["seed"])
        self.config = self.Config(**state["config"])
        self.rng.bit_generator.state = state["rng"]
        self.history = [(self.space.from_string(s), math.nan if f is None else float(f)) for s, f in state["history"]]
        self._seen = set(state["seen"])
        self._load_extra_state(state.get("extra") or {})

    # -- hooks for subclasses ---------------------------------------------------------------------
    @abstractmethod
    def _propose(self, n: int) -> list[Spec]:
        """Returns `n` new candidates (use `fresh` to avoid repeats)."""

    def _observe(self, specs: list[Spec], fitnesses: list[float], extra: list[Any] | None) -> None:  # noqa: B027  # optional hook
        """Updates internal state after `tell` (history is already recorded)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027  # optional hook
        pass

    # -- helpers ----------------------------------------------------------------------------------
    def is_seen(self, spec: Spec) -> bool:
        """Whether `spec` was asked or told before."""
        return self.space.to_string(spec) in self._seen

    def exhausted(self) -> bool:
        """True when every architecture of the space has been asked."""
        return len(self._seen) >= self.space.size()

    def fresh(self, make: Callable[[], Spec]) -> Spec:
        """Calls `make` until it returns a spec not asked before and marks it asked; after
        `max_fresh_tries` failures it tries uniform samples, and finally accepts a repeat."""
        for attempt in range(2 * self.max_fresh_tries):
            spec = make() if attempt < self.max_fresh_tries else self.space.sample(self.rng)
            key = self.space.to_string(spec)
            if key not in self._seen:
                break
            if self.exhausted():
                break
        self._seen.add(self.space.to_string(spec))
        return spec

    def scored_history(self) -> list[tuple[Spec, float]]:
        """History without failed (NaN) evaluations."""
        return [(s, f) for s, f in self.history if not math.isnan(f)]
