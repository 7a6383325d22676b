"""Search spaces. `get_space(name)` builds one by its registered name."""

from __future__ import annotations

from typing import Any

from nas_lib.registry import Registry

# Each space's views for the pruning layers register on import (see `nas_lib.space.narrowing`).
from nas_lib.space import hybrid_views as _hybrid_views  # noqa: F401
from nas_lib.space import nb201_views as _nb201_views  # noqa: F401
from nas_lib.space.base import InvalidArchitectureError, Membership, SearchSpace, stable_arch_id
from nas_lib.space.constraints import HybridConstraints
from nas_lib.space.hybrid import BlockSpec, HybridArch, HybridSpace
from nas_lib.space.nb201 import NB201Arch, NB201Space

SPACES: Registry[type[SearchSpace]] = Registry("search space")
SPACES.add("hybrid", HybridSpace)
SPACES.add("nb201", NB201Space)


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """Builds the registered space `name` (``hybrid`` or ``nb201``)."""
    return SPACES.get(name)(**kwargs)


__all__ = [
    "SPACES",
    "get_space",
    "SearchSpace",
    "InvalidArchitectureError",
    "Membership",
    "stable_arch_id",
    "HybridConstraints",
    "HybridSpace",
    "HybridArch",
    "BlockSpec",
    "NB201Space",
    "NB201Arch",
]
