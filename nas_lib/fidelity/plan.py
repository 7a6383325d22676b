"""The rungs of one multi-fidelity evaluation: halving or Hyperband brackets over a list of
architectures, driven round by round, and the store keys of a rung's score.

Every unfinished bracket is asked at once, so one round is one batch of (architecture, budget)
trainings that can run in parallel; the scores are told back to each bracket. The plan keeps no
state worth saving: it is rebuilt from the architectures and replayed against the evaluation
store, where every rung's score is kept, so a resumed run asks the store instead of training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nas_lib.fidelity.halving import HalvingConfig, SuccessiveHalving, hyperband
from nas_lib.fidelity.training import RungProtocol

KINDS = ("none", "halving", "hyperband")
SCHEDULES = ("long", "short")
FITNESS = "fidelity"  # the `proxy` name of an architecture's score at the highest rung it reached
RUNG_PREFIX = "train@"  # the `proxy` name of a rung's score: train@<epochs>

Key = tuple[str, str, str, str, int]  # the evaluation store's key (see nas_lib.evaluation)


@dataclass(frozen=True)
class FidelitySpec:
    """A multi-fidelity evaluation, as the config states it.

    Attributes:
        kind: ``halving`` (one bracket over the budgets) or ``hyperband`` (its brackets from
            the smallest to the largest budget).
        budgets: epochs of the rungs, increasing (Hyperband uses the first and the last).
        eta: keep the best 1/eta at each rung.
        schedule: ``long``: one cosine schedule over the largest budget, a rung is a checkpoint
            of it and a promoted architecture continues; ``short``: each rung is a complete
            schedule of its own budget, trained from scratch.
    """

    kind: str = "halving"
    budgets: tuple[int, ...] = (1, 3, 9)
    eta: int = 3
    schedule: str = "long"

    def __post_init__(self) -> None:
        if self.kind not in KINDS[1:]:
            raise ValueError(f"fidelity kind {self.kind!r} must be one of {', '.join(KINDS[1:])}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"fidelity schedule {self.schedule!r} must be one of {', '.join(SCHEDULES)}")
        HalvingConfig(budgets=self.budgets, eta=self.eta)  # validates the rungs

    @property
    def max_budget(self) -> int:
        return self.budgets[-1]

    def protocol(self, base: RungProtocol, budget: int) -> RungProtocol:
        """The protocol of a rung at `budget`: `base` with the schedule's horizon."""
        horizon = self.max_budget if self.schedule == "long" else budget
        return RungProtocol(**{**base.__dict__, "horizon": horizon})

    def brackets(self, archs: Sequence[str]) -> list[SuccessiveHalving]:
        """The brackets that evaluate `archs` (each architecture in exactly one)."""
        archs = list(dict.fromkeys(archs))
        if self.kind == "halving":
            return [SuccessiveHalving(archs, HalvingConfig(self.budgets, self.eta))]
        plan = hyperband(self.max_budget, self.eta, self.budgets[0])
        sizes = deal(len(archs), [n for n, _ in plan])
        out, start = [], 0
        for size, (_, config) in zip(sizes, plan):
            if size:
                out.append(SuccessiveHalving(archs[start : start + size], config))
            start += size
        return out


def deal(total: int, weights: Sequence[int]) -> list[int]:
    """`total` items shared in proportion to `weights` (largest remainders; ties to the first)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    sizes = [math.floor(x) for x in exact]
    for i in sorted(range(len(weights)), key=lambda i: (-(exact[i] - sizes[i]), i))[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


class FidelityPlan:
    """All brackets of one evaluation, asked and told a round at a time.

    Args:
        archs: the architectures (canonical strings) to evaluate.
        spec: the fidelity settings.
    """

    def __init__(self, archs: Sequence[str], spec: FidelitySpec) -> None:
        self.spec = spec
        self.brackets = spec.brackets(archs)

    def ask(self) -> list[tuple[str, int]]:
        """The (architecture, budget) pairs of this round: every unfinished bracket's rung."""
        out: list[tuple[str, int]] = []
        for bracket in self.brackets:
            step = bracket.ask()
            if step is not None:
                out += [(arch, step[0]) for arch in step[1]]
        return out

    def tell(self, scores: Mapping[tuple[str, int], float]) -> None:
        """Gives each bracket the scores of its rung (NaN for a failure)."""
        for bracket in self.brackets:
            step = bracket.ask()
            if step is not None:
                budget, archs = step
                bracket.tell(budget, {a: scores[a, budget] for a in archs})

    def highest(self) -> dict[str, tuple[int, float]]:
        """Each architecture's (budget, score) at the highest rung it reached."""
        out: dict[str, tuple[int, float]] = {}
        for bracket in self.brackets:
            for budget, told in zip(bracket.config.budgets, bracket.scores):
                out.update({arch: (budget, score) for arch, score in told.items()})
        return out


def rung_key(arch_id: str, data_fingerprint: str, protocol: RungProtocol, budget: int) -> Key:
    """The store key of a rung's score: the architecture, the data, the protocol (horizon, batch,
    lr, weight decay, step cap and seed, in its version) and the budget."""
    return (arch_id, data_fingerprint, f"{RUNG_PREFIX}{budget}", protocol.version(), protocol.seed)
