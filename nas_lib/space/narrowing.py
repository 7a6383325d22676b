"""How a search space is narrowed by choice-group decisions: the space side of pruning.

A pruning layer (`nas_lib.pruning`) decides one respect of a space (macro structure,
hyperparameters, connections). What that respect *is* depends on the space: on the hybrid space
the macro layer keeps block types per stage, on NB201 operation kinds per edge. Each space
therefore keeps, in its class's `prune_views` registry, one `LayerView` per layer it supports:
the layer's *choice groups* (``stage:early``, ``edge3``) with the options the space still allows,
how an architecture uses them, and the narrower space a decision leaves. The pruning code only
talks to these views, so it never switches on the concrete space.

A new pruning layer registers a view for each space it supports (``@NB201Space.prune_views
.register("my_layer")``); a new space registers a view for each layer it can be pruned by.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from nas_lib.space.base import SearchSpace

Option = str | int
Groups = dict[str, tuple[Option, ...]]


class GroupDecision(BaseModel):
    """The JSON a provider returns for a layer: the options to keep in each choice group."""

    model_config = ConfigDict(extra="forbid")

    keep: dict[str, list[Option]] = Field(
        default_factory=dict,
        description="choice group -> options to keep (a subset of the current options; a group left out keeps all).",
    )
    rationale: str = Field(default="", max_length=4000, description="one or two sentences on why.")


class LayerView(ABC):
    """How one pruning layer reads and narrows one space.

    Attributes:
        space: the (possibly already narrowed) space this view reads.
        decision_model: the pydantic schema of the layer's decision on this space.
        allow_empty_groups: whether a decision may keep no option of a group (the generic check
            still refuses a decision that leaves the space empty).
    """

    decision_model: ClassVar[type[GroupDecision]] = GroupDecision
    allow_empty_groups: ClassVar[bool] = False

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    @abstractmethod
    def groups(self) -> Groups:
        """The choice groups of this layer on the space, with their current options."""

    @abstractmethod
    def features(self, spec: Hashable) -> dict[str, list[Option]]:
        """For each group, the options `spec` uses, once per use (for enrichment among the best samples)."""

    @abstractmethod
    def apply(self, decision: GroupDecision) -> SearchSpace:
        """The space narrowed by `decision` (never wider; ValueError when it cannot be applied)."""

    def extra_problems(self, decision: GroupDecision) -> list[str]:
        """Checks beyond the group subsets (depth ranges, sequences); none by default."""
        return []

    def widenings(self, decision: GroupDecision) -> list[tuple[str, GroupDecision]]:
        """Decisions one step wider than `decision` beyond restoring group options; none by default."""
        return []

    def describe_extra(self) -> dict[str, Any]:
        """Context beyond the groups that a prompt shows (e.g. the current depth range)."""
        return {}
