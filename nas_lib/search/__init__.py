"""Search strategies behind one ask/tell interface (`Strategy`), registered by name.

`make_strategy(name, space, seed, **options)` builds only the chosen one. Every strategy runs on
any `SearchSpace` (hybrid, NB201).
"""

from __future__ import annotations

from typing import Any

from nas_lib.search import ednag, ga, llm_ranker, nsga2, random_search, rea, reinforce, surrogate  # noqa: F401  (modules register themselves)
from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES
from nas_lib.space.base import SearchSpace


def make_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """Builds the registered strategy `name` on `space` (KeyError listing the known names)."""
    return STRATEGIES.get(name)(space, seed=seed, **options)


__all__ = ["STRATEGIES", "Strategy", "Spec", "make_strategy"]
