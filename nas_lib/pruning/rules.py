"""Turns the knowledge base's structured rules into cuts of a layer's decision (offline provider).

Rules are data. Only rules that name a choice group and options of the current space are used;
anything else is ignored and listed in the notes, so a malformed or hostile rule cannot widen the
space or break the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_lib.pruning.base import GroupDecision, PruningLayer, match_options
from nas_lib.space.base import SearchSpace


def layer_rules(rules: Mapping[str, Any], space: SearchSpace, layer: PruningLayer) -> Mapping[str, Any]:
    """The rules for `layer` on `space`: ``rules["pruning"][space.name][layer.name]`` (or
    ``rules[space.name][layer.name]``), else nothing."""
    root = rules.get("pruning", rules) if isinstance(rules, Mapping) else {}
    found = root.get(space.name, {}) if isinstance(root, Mapping) else {}
    found = found.get(layer.name, {}) if isinstance(found, Mapping) else {}
    return found if isinstance(found, Mapping) else {}


def apply_rules(layer: PruningLayer, space: SearchSpace, decision: GroupDecision, rules: Mapping[str, Any]) -> tuple[GroupDecision, list[str]]:
    """`decision` with the rules' ``avoid`` options removed (never emptying a group) and, on the
    hybrid macro layer, their ``forbidden_sequences``/``preferred_sequences`` added.

    Returns the new decision and a note per rule used or ignored.
    """
    found = layer_rules(rules, space, layer)
    groups, notes = layer.groups(space), []
    keep = {k: list(v) for k, v in decision.keep.items()}
    avoid = found.get("avoid", {})
    for key, options in avoid.items() if isinstance(avoid, Mapping) else []:
        if key not in groups or not isinstance(options, list):
            notes.append(f"ignored rule for unknown group {key!r}")
            continue
        current = keep.get(key, list(groups[key]))
        dropped, unknown = match_options(options, current)
        rest = [o for o in current if o not in dropped]
        if unknown:
            notes.append(f"{key}: ignored unknown options {unknown}")
        if dropped and rest:
            keep[key] = rest
            notes.append(f"{key}: avoid {dropped}")
    update: dict[str, Any] = {"keep": keep}
    for field in ("forbidden_sequences", "preferred_sequences"):
        if field in type(decision).model_fields:
            seqs = [list(map(str, s)) for s in found.get(field, []) if isinstance(s, list | tuple)]
            if seqs:
                update[field] = [*getattr(decision, field), *seqs]
                notes.append(f"{field}: {seqs}")
    return decision.model_copy(update=update), notes
