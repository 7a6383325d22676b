"""Checks, application and step-wise widening of group decisions, shared by every layer."""

from __future__ import annotations

from nas_lib.pruning.base import GroupDecision, PruningLayer, match_options
from nas_lib.space.base import SearchSpace


def no_cut(layer: PruningLayer, space: SearchSpace) -> GroupDecision:
    """The decision that keeps everything: the documented fallback of every layer."""
    return layer.decision_model(space)()


def decision_problems(layer: PruningLayer, space: SearchSpace, decision: GroupDecision) -> list[str]:
    """Every semantic error of `decision` against `space`; empty when it can be applied.

    Checks that each group and option exists in the current space, that no group is emptied
    (unless the layer allows it), the layer's own rules, and that the narrowed space is non-empty.
    """
    groups = layer.groups(space)
    out: list[str] = []
    for key, wanted in decision.keep.items():
        if key not in groups:
            out.append(f"unknown choice group {key!r}; groups: {', '.join(groups) or '(none)'}")
            continue
        kept, unknown = match_options(wanted, groups[key])
        out += [f"{key}: {w!r} is not a current option (options: {list(groups[key])})" for w in unknown]
        if not kept and not unknown and not layer.allows_empty_groups(space):
            out.append(f"{key}: keeps no option (keep at least one of {list(groups[key])})")
    out += layer.extra_problems(space, decision)
    if out:
        return out
    try:
        narrowed = layer.apply(space, decision)
    except ValueError as err:
        return [f"the decision cannot be applied: {err}"]
    if narrowed.size() == 0:
        return ["the resulting space is empty (no valid architecture is left)"]
    return []


def canonical(layer: PruningLayer, space: SearchSpace, decision: GroupDecision) -> GroupDecision:
    """The decision with options spelled as the space spells them and no-op groups removed."""
    groups = layer.groups(space)
    keep = {}
    for key, wanted in decision.keep.items():
        kept, _ = match_options(wanted, groups.get(key, ()))
        if key in groups and len(kept) < len(groups[key]):
            keep[key] = kept
    return decision.model_copy(update={"keep": keep})


def widenings(layer: PruningLayer, space: SearchSpace, decision: GroupDecision) -> list[tuple[str, GroupDecision]]:
    """Every decision one step wider than `decision`: one removed option restored, or one of the
    layer's own relaxations (a deeper depth range, a dropped forbidden sequence, ...)."""
    groups = layer.groups(space)
    out = []
    for key, kept in decision.keep.items():
        kept_set = {str(k) for k in kept}
        for option in groups.get(key, ()):
            if str(option) not in kept_set:
                wider = {**decision.keep, key: [*kept, option]}
                if len(wider[key]) == len(groups[key]):
                    del wider[key]
                out.append((f"restore {option} in {key}", decision.model_copy(update={"keep": wider})))
    return out + layer.widenings(space, decision)
