"""Shared types of the pruning layers: configuration, outcome, proposal and the layer interface.

A pruning layer narrows a search space in one respect (macro structure, hyperparameters,
connections). Each space describes the decisions a layer owns on it as *choice groups* (its
`LayerView`, see `nas_lib.space.narrowing`): a group is one named decision (``stage:early`` of the
hybrid space, ``edge3`` of NB201) with the options the current space still allows. A decision
keeps a subset of each group's options (a missing group keeps all of them); the hybrid macro
layer adds a depth range, type shares and type sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas_lib.space.base import SearchSpace
from nas_lib.space.narrowing import GroupDecision, Groups, LayerView, Option

__all__ = [
    "GroupDecision",
    "Groups",
    "LayerOutcome",
    "MeasureConfig",
    "Option",
    "Proposal",
    "PruningLayer",
    "ScoreFn",
    "match_options",
    "option_key",
]

ScoreFn = Callable[[Hashable], float]


@dataclass(frozen=True)
class MeasureConfig:
    """How a layer's cut is measured and guarded.

    Attributes:
        k: architectures drawn from the UNPRUNED space for retention (a space small enough to
            enumerate, such as NB201, is measured exhaustively instead).
        seed: seed of every random draw (reference sample, offline proposals).
        retention_floor: the guard relaxes a cut whose top-1% retention falls below this.
        score_fn: ground truth (a benchmark table) or a proxy; higher is better. Used only to
            measure and guard.
        proxy_fn: what the offline provider ranks its own samples with (a proxy, never the table);
            None uses `score_fn` (right when `score_fn` already is a proxy).
        guard_fn: what the guard ranks the reference with; None uses `score_fn`. Give the proxy
            here to see what the guard does without ground truth (as in a real run).
        offline_samples: architectures the offline provider samples and scores per layer; 400
            gives each option of a 5-way choice about 80 draws, enough for a stable enrichment.
        reference_specs: a fixed reference measured with `score_fn` instead of K draws: the
            architectures of a trained table of a space too large to enumerate (the guard still
            draws its own reference, as in a real run).
    """

    k: int = 2000
    seed: int = 0
    retention_floor: float = 0.8
    score_fn: ScoreFn | None = None
    proxy_fn: ScoreFn | None = None
    offline_samples: int = 400
    guard_fn: ScoreFn | None = None
    reference_specs: tuple[Hashable, ...] | None = None

    def proposal_fn(self) -> ScoreFn | None:
        """The score the offline provider may use for its own decisions."""
        return self.proxy_fn or self.score_fn


@dataclass
class LayerOutcome:
    """What one layer did: the narrowed space, the decision it applied, and its measured row."""

    layer: str
    space: SearchSpace
    decision: dict[str, Any]
    record: dict[str, Any]


@dataclass(frozen=True)
class Proposal:
    """A provider's answer: a decision (None when it has none) and how it was obtained."""

    decision: GroupDecision | None
    provider: str
    model: str = ""
    attempts: int = 0
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback_reason: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


class PruningLayer:
    """One pruning layer: its name, what it asks a provider to decide, and the space's view of it.

    What the layer means on a given space (its choice groups, how a decision narrows the space)
    is that space's `LayerView` for this layer's name (`SearchSpace.prune_view`), so a layer works
    on every space that registers a view for it and this class never switches on the space.
    """

    name: str = "layer"
    task: str = ""  # one paragraph the LLM reads: what this layer decides

    def view(self, space: SearchSpace) -> LayerView:
        """`space`'s view of this layer (KeyError naming the layers the space supports)."""
        return space.prune_view(self.name)

    def decision_model(self, space: SearchSpace) -> type[GroupDecision]:
        """The pydantic schema of this layer's decision on `space`."""
        return self.view(space).decision_model

    def allows_empty_groups(self, space: SearchSpace) -> bool:
        """Whether a decision may keep no option of a group on `space`."""
        return self.view(space).allow_empty_groups

    def groups(self, space: SearchSpace) -> Groups:
        """The choice groups this layer decides on `space`, with their current options."""
        return self.view(space).groups()

    def features(self, space: SearchSpace, spec: Hashable) -> dict[str, list[Option]]:
        """For each group, the options `spec` uses, once per use (for enrichment among the best samples)."""
        return self.view(space).features(spec)

    def apply(self, space: SearchSpace, decision: GroupDecision) -> SearchSpace:
        """The space narrowed by `decision` (never wider than `space`)."""
        return self.view(space).apply(decision)

    def extra_problems(self, space: SearchSpace, decision: GroupDecision) -> list[str]:
        """Checks beyond the group subsets (depth ranges, sequences)."""
        return self.view(space).extra_problems(decision)

    def widenings(self, space: SearchSpace, decision: GroupDecision) -> list[tuple[str, GroupDecision]]:
        """Decisions one step wider than `decision` beyond restoring group options."""
        return self.view(space).widenings(decision)

    def describe_extra(self, space: SearchSpace) -> dict[str, Any]:
        """Context beyond the groups that the prompt shows (e.g. the current depth range)."""
        return self.view(space).describe_extra()


def option_key(value: Option) -> str:
    """Options compare by text, so an LLM writing ``"64"`` for 64 is understood."""
    return str(value).strip()


def match_options(wanted: Sequence[Option], current: Sequence[Option]) -> tuple[list[Option], list[Option]]:
    """Splits `wanted` into the current options it names (in current order) and unknown ones."""
    by_key = {option_key(o): o for o in current}
    unknown = [w for w in wanted if option_key(w) not in by_key]
    keys = {option_key(w) for w in wanted}
    return [o for o in current if option_key(o) in keys], unknown
