"""A search space as a JSON value (what tasks receive and ``space.json`` stores) and back."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any


def space_to_dict(space: Any) -> dict[str, Any]:
    """JSON form of a (pruned) space: its name plus constraints or per-edge ops."""
    if getattr(space, "name", "") == "nb201":
        return {"name": "nb201", "edge_ops": [list(ops) for ops in space.edge_ops]}
    return {"name": "hybrid", "constraints": space.constraints.to_dict()}


def space_from_dict(data: dict[str, Any]) -> Any:
    """The space a `space_to_dict` value describes (built once per process and value)."""
    return _space(json.dumps(data, sort_keys=True))


@lru_cache(maxsize=32)
def _space(key: str) -> Any:
    from nas_lib.space import HybridConstraints, get_space

    data = json.loads(key)
    if data["name"] == "nb201":
        return get_space("nb201", edge_ops=data["edge_ops"])
    return get_space("hybrid", constraints=HybridConstraints.from_dict(data["constraints"]))


def base_space_dict(section: Any) -> dict[str, Any]:
    """The unpruned space of a config's ``space`` section, as a JSON value."""
    from nas_lib.space import HybridConstraints, get_space

    if section.name == "hybrid":
        base = {**section.constraints, "min_depth": section.min_depth, "max_depth": section.max_depth}
        return space_to_dict(get_space("hybrid", constraints=HybridConstraints.from_dict(base)))
    return space_to_dict(get_space(section.name))


def narrowing_note(section: Any) -> str | None:
    """What the config's ``space`` section does to the full space, as one line (None when it
    searches the full space): ``ehnas space describe`` counts the full space, a run its own."""
    from nas_lib.space import get_space
    from tasks.config import SpaceConfig

    before, after = get_space(section.name).log10_size(), space_from_dict(base_space_dict(section)).log10_size()
    if abs(before - after) < 1e-9:
        return None
    how = [f"depth {section.min_depth}-{section.max_depth}"] if section.name == "hybrid" else []
    how += [f"space.constraints: {', '.join(sorted(section.constraints))}"] if section.constraints else []
    whose = "the default config" if section == SpaceConfig() else "the config"
    return (
        f"space: {whose} narrowed the {section.name} space from log10 size {before:.2f} (ehnas space describe) to {after:.2f} "
        f"({'; '.join(how)}) before any pruning"
    )
