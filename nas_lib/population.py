"""Initial population of a (pruned) space: distinct architectures, depths spread evenly.

Uniform sampling of the hybrid space almost always returns its deepest networks (there are far
more of them), so the population draws a depth first, uniformly over the allowed depths, then an
architecture of that depth. A share of the population favours the knowledge's preferred block
sequences: for those slots several candidates are drawn and the most preferred one is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

POPULATION_SCHEMA = pa.schema(
    [
        ("arch_id", pa.string()),
        ("arch", pa.string()),
        ("index", pa.int64()),
        ("depth", pa.int64()),
        ("preference", pa.int64()),
        ("source", pa.string()),
    ]
)


@dataclass(frozen=True)
class PopulationConfig:
    """How to draw the initial population.

    Attributes:
        size: number of distinct architectures.
        preferred_bias: share of slots that keep the most preferred of `candidates` draws.
        candidates: draws compared for a preferred slot.
        max_tries_factor: give up after size * this many draws (tiny spaces have few architectures).
    """

    size: int = 16
    preferred_bias: float = 0.5
    candidates: int = 4
    max_tries_factor: int = 50


def _draw(space: Any, rng: np.random.Generator) -> Any:
    depths = getattr(space, "depths", None)
    if depths is None:
        return space.sample(rng)
    allowed = space.held_depths()
    return space.sample(rng, depth=int(allowed[int(rng.integers(len(allowed)))]))


def _preference(space: Any, spec: Any) -> int:
    pref = getattr(space, "preference", None)
    return int(pref(spec)) if pref is not None else 0


def generate_population(space: Any, cfg: PopulationConfig, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Distinct architectures of `space` as population rows (see `POPULATION_SCHEMA`).

    Returns fewer than `cfg.size` rows only when the space holds fewer distinct architectures
    than can be found within the try budget.
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    tries = 0
    while len(rows) < cfg.size and tries < cfg.size * cfg.max_tries_factor:
        tries += 1
        preferred = rng.random() < cfg.preferred_bias
        spec = _draw(space, rng)
        if preferred:
            options = [spec] + [_draw(space, rng) for _ in range(cfg.candidates - 1)]
            spec = max(options, key=lambda s: _preference(space, s))
        arch_id = space.arch_id(spec)
        if arch_id in seen:
            continue
        seen.add(arch_id)
        rows.append(
            {
                "arch_id": arch_id,
                "arch": space.to_string(spec),
                "index": len(rows),
                "depth": int(getattr(spec, "depth", len(getattr(spec, "ops", ())))),
                "preference": _preference(space, spec),
                "source": "preferred" if preferred else "uniform",
            }
        )
    return rows
