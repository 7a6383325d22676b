"""Successive halving and Hyperband as a pure ask/tell planner over training budgets.

Successive halving evaluates every candidate at the smallest budget, keeps the best 1/eta and
evaluates those at the next budget, and so on up to the largest (Jamieson & Talwalkar, "Non-
stochastic Best Arm Identification and Hyperparameter Optimization", 2016, arXiv:1502.07943).
Hyperband runs several halving brackets that trade the number of candidates against the
smallest budget (Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
Optimization", 2018, arXiv:1603.06560).

A budget is a cumulative number of training epochs: a candidate promoted from the rung at 1 to
the rung at 3 is trained to epoch 3 in total (the caller decides whether it continues from its
checkpoint or restarts). The planner never evaluates anything: `ask` says which architectures to
score at which budget, `tell` gives it their scores (higher is better, NaN for a failure, which is
never promoted), and its whole state round-trips through JSON for a resumed run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class HalvingConfig:
    """Rungs of one successive-halving bracket.

    Attributes:
        budgets: epochs of each rung, strictly increasing (cumulative: a rung's budget is the
            total epochs a candidate has trained when it is scored there).
        eta: reduction factor; each rung keeps the best 1/eta of the previous one (at least one).
    """

    budgets: tuple[int, ...] = (1, 3, 9)
    eta: int = 3

    def __post_init__(self) -> None:
        budgets = tuple(int(b) for b in self.budgets)
        object.__setattr__(self, "budgets", budgets)
        if not budgets:
            raise ValueError("HalvingConfig.budgets must name at least one rung")
        if budgets[0] < 1 or any(b <= a for a, b in zip(budgets, budgets[1:])):
            raise ValueError(f"HalvingConfig.budgets {budgets} must be positive and strictly increasing")
        if int(self.eta) < 2:
            raise ValueError(f"HalvingConfig.eta {self.eta} must be >= 2")


def survivors(scores: Mapping[str, float], order: Sequence[str], eta: int) -> list[str]:
    """The best `max(1, len(order) // eta)` of `order` by score; NaN scores are never kept.

    Ties keep the earlier candidate of `order`, so the plan is deterministic.
    """
    keep = max(1, len(order) // eta)
    ranked = [a for a in order if not math.isnan(scores[a])]
    ranked.sort(key=lambda a: -scores[a])  # stable: ties keep their order
    return ranked[:keep]


class SuccessiveHalving:
    """Ask/tell planner of one successive-halving bracket.

    Args:
        candidates: the architectures (canonical strings) of the first rung; repeats are dropped.
        config: the rungs' budgets and eta.

    Example:
        >>> sh = SuccessiveHalving(["a", "b", "c"], HalvingConfig(budgets=(1, 3), eta=3))
        >>> sh.ask()
        (1, ['a', 'b', 'c'])
        >>> sh.tell(1, {"a": 0.2, "b": 0.5, "c": 0.1})
        >>> sh.ask()
        (3, ['b'])
    """

    def __init__(self, candidates: Sequence[str], config: HalvingConfig = HalvingConfig()) -> None:
        self.config = config
        self.candidates = list(dict.fromkeys(str(c) for c in candidates))
        # scores[i] maps each architecture of rung i to its score once rung i is told.
        self.scores: list[dict[str, float]] = []
        self._pending: list[str] = list(self.candidates)

    @property
    def rung(self) -> int:
        """Index of the rung asked next (equals the number of rungs told)."""
        return len(self.scores)

    def finished(self) -> bool:
        """True when no rung is left to evaluate."""
        return not self._pending

    def ask(self) -> tuple[int, list[str]] | None:
        """The next rung as (budget, architectures), or None when finished.

        Asking twice without a `tell` returns the same rung.
        """
        if self.finished():
            return None
        return self.config.budgets[self.rung], list(self._pending)

    def tell(self, budget: int, scores: Mapping[str, float]) -> None:
        """Records the scores of the rung `ask` returned and promotes its best 1/eta.

        Args:
            budget: the budget of the asked rung (a mismatch raises ValueError).
            scores: a score for every architecture of the rung (higher is better; NaN = failed).
        """
        asked = self.ask()
        if asked is None:
            raise ValueError("tell after the last rung: the bracket is finished")
        want, archs = asked
        if int(budget) != want:
            raise ValueError(f"tell got budget {budget} but rung {self.rung} has budget {want}")
        missing = [a for a in archs if a not in scores]
        extra = sorted(set(scores) - set(archs))
        if missing or extra:
            raise ValueError(f"tell at budget {want}: missing scores for {missing[:3]}, unexpected {extra[:3]}")
        told = {a: float(scores[a]) for a in archs}
        self.scores.append(told)
        last = self.rung >= len(self.config.budgets)
        self._pending = [] if last else survivors(told, archs, self.config.eta)

    def best(self) -> tuple[str, float]:
        """The best architecture at the highest rung where any succeeded, with its score."""
        for told in reversed(self.scores):
            ok = [(a, s) for a, s in told.items() if not math.isnan(s)]
            if ok:
                return max(ok, key=lambda item: item[1])
        raise RuntimeError("successive halving has no successful evaluation yet")

    def highest_scores(self) -> dict[str, float]:
        """Every candidate told so far with its score at the highest rung it reached."""
        out: dict[str, float] = {}
        for told in self.scores:
            out.update(told)
        return out

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (NaN as null)."""
        return {
            "config": {"budgets": list(self.config.budgets), "eta": self.config.eta},
            "candidates": list(self.candidates),
            "scores": [{a: (None if math.isnan(s) else s) for a, s in told.items()} for told in self.scores],
            "pending": list(self._pending),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a snapshot taken by `state_dict`."""
        cfg = state["config"]
        self.config = HalvingConfig(budgets=tuple(cfg["budgets"]), eta=int(cfg["eta"]))
        self.candidates = [str(c) for c in state["candidates"]]
        self.scores = [{a: (math.nan if s is None else float(s)) for a, s in told.items()} for told in state["scores"]]
        self._pending = [str(a) for a in state["pending"]]


def hyperband(max_budget: int, eta: int = 3, min_budget: int = 1) -> list[tuple[int, HalvingConfig]]:
    """The brackets of Hyperband, most exploratory first.

    Bracket s (from s_max down to 0) starts n = ceil((s_max + 1) / (s + 1) * eta**s) candidates at
    budget max_budget / eta**s (rounded, at least `min_budget`) and multiplies the budget by eta
    per rung up to `max_budget`.

    Args:
        max_budget: the largest budget (epochs) any candidate reaches.
        eta: reduction factor (>= 2).
        min_budget: the smallest budget a rung may have (>= 1).

    Returns:
        One (number of candidates, rungs) pair per bracket.
    """
    if eta < 2 or min_budget < 1 or max_budget < min_budget:
        raise ValueError(f"hyperband needs eta >= 2 and 1 <= min_budget <= max_budget (got {eta}, {min_budget}, {max_budget})")
    s_max = 0
    while min_budget * eta ** (s_max + 1) <= max_budget:
        s_max += 1
    brackets: list[tuple[int, HalvingConfig]] = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * eta**s)
        budgets = sorted({max(min_budget, round(max_budget / eta ** (s - i))) for i in range(s + 1)})
        brackets.append((n, HalvingConfig(budgets=tuple(budgets), eta=eta)))
    return brackets
