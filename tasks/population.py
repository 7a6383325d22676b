"""Population task: the initial architectures of the pruned space (``05_population.parquet``)."""

from __future__ import annotations

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.artifacts import read_table, write_table
from nas_lib.population import POPULATION_SCHEMA, PopulationConfig, generate_population
from tasks.context import load_config, load_space, step_path


def population_rows(run_dir: str) -> list[dict]:
    """Draws the seeded initial population of the run's (pruned) space."""
    cfg = load_config(run_dir)
    pop = PopulationConfig(size=cfg.population.size, preferred_bias=cfg.population.preferred_bias)
    return generate_population(load_space(run_dir), pop, np.random.default_rng([cfg.seed, 5]))


@task(name="population", cache_policy=NO_CACHE)
def population_step(run_dir: str) -> str:
    """Writes ``05_population.parquet``."""
    return str(write_table(step_path(run_dir, "05_population"), population_rows(run_dir), POPULATION_SCHEMA))


def population_archs(run_dir: str) -> list[str]:
    """The population's canonical architecture strings, in order."""
    return read_table(step_path(run_dir, "05_population"))["arch"].tolist()
