"""search.options: validated against each strategy's own options; warm-ups fitted to the budget."""

from __future__ import annotations

import pytest

from nas_lib.search import STRATEGIES, check_options, fitted_options, strategy_options, warmup_note
from tasks.config import ConfigError, load_config


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_declares_its_options(name: str) -> None:
    options = strategy_options(name)
    check_options(name, options)  # its own defaults are valid
    field = STRATEGIES.get(name).warmup_option
    assert field is None or field in options


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"search.options: strategy 'ga' has no option\(s\) \['popsize'\]; valid: crossover_rate, elites, mutation_rates, population, tournament",
    ):
        load_config(overrides=["search.strategy=ga", "search.options={popsize: 8}"])
    assert load_config(overrides=["search.strategy=ga", "search.options={population: 8}"]).search.options == {"population": 8}


def test_warmup_is_fitted_to_the_initial_population_unless_set() -> None:
    assert fitted_options("ga", {}, 12) == {"population": 12}
    assert fitted_options("ga", {"population": 30}, 12) == {"population": 30}
    assert fitted_options("surrogate", {}, 12) == {"init": 12}
    assert fitted_options("rea", {}, 12) == {"population": 10}  # already inside the budget
    assert fitted_options("random", {}, 12) == {}


def test_a_warmup_beyond_the_budget_says_so() -> None:
    note = warmup_note("ga", {"population": 60}, 12 + 8 * 6)
    assert note is not None and "behaves as random search" in note and "search.options.population" in note
    assert warmup_note("ga", {"population": 12}, 60) is None
