"""Population task: the initial architectures of the pruned space (the rows of ``05_population``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.population import POPULATION_SCHEMA, PopulationConfig, generate_population
from tasks.config import PopulationConfig as PopulationSection
from tasks.spaces import space_from_dict

__all__ = ["POPULATION_SCHEMA", "population_rows", "population_step"]


def population_rows(space: dict[str, Any], section: PopulationSection, seed: int) -> list[dict[str, Any]]:
    """Draws the seeded initial population of `space` (a JSON dict)."""
    pop = PopulationConfig(size=section.size, preferred_bias=section.preferred_bias)
    return generate_population(space_from_dict(space), pop, np.random.default_rng([seed, 5]))


@task(name="population", cache_policy=NO_CACHE)
def population_step(space: dict[str, Any], section: PopulationSection, seed: int) -> list[dict[str, Any]]:
    """The rows of ``05_population``."""
    return population_rows(space, section, seed)
