"""The retention guard: a cut that loses the good region is widened step by step, then undone.

Each step restores the single removed choice (or relaxes the single rule) that recovers the most
top-1% retention, preferring the smaller space on ties, until retention reaches the floor. If no
widening gets there, the layer makes no cut. Either way the outcome is flagged, so no provider
can silently discard the best architectures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nas_lib.pruning.base import GroupDecision, PruningLayer
from nas_lib.pruning.groups import decision_problems, no_cut, widenings
from nas_lib.pruning.measure import Reference, share_inside
from nas_lib.space.base import SearchSpace


@dataclass
class GuardResult:
    decision: GroupDecision
    space: SearchSpace
    relaxed: bool
    steps: list[str] = field(default_factory=list)
    proposed_top1: float = float("nan")


def guard(layer: PruningLayer, space: SearchSpace, decision: GroupDecision, reference: Reference, floor: float) -> GuardResult:
    """Applies `decision` to `space`, widening it until top-1% retention (against the unpruned
    space's `reference`) reaches `floor`."""
    top = reference.top(0.01)
    narrowed = layer.apply(space, decision)
    proposed = share_inside(narrowed, top)
    if proposed >= floor:
        return GuardResult(decision, narrowed, False, [], proposed)
    steps: list[str] = []
    current = decision
    for _ in range(64):  # every decision is widened to no cut in far fewer steps
        options = [(label, d, layer.apply(space, d)) for label, d in widenings(layer, space, current) if not decision_problems(layer, space, d)]
        if not options:
            break
        label, current, narrowed = max(options, key=lambda o: (share_inside(o[2], top), -o[2].size()))
        steps.append(label)
        if share_inside(narrowed, top) >= floor:
            return GuardResult(current, narrowed, True, steps, proposed)
    steps.append("undo the whole cut")
    empty = no_cut(layer, space)
    return GuardResult(empty, layer.apply(space, empty), True, steps, proposed)
