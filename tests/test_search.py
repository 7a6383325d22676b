"""Search strategies: every registered strategy searches, reproduces, resumes and beats random."""

from __future__ import annotations

import functools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from nas_lib.bench.search import load_table, nb201_space_for
from nas_lib.search import STRATEGIES, Strategy, make_strategy
from nas_lib.search.ga import shannon_entropy
from nas_lib.search.llm_ranker import LLMRanker, Pick
from nas_lib.search.nsga2 import crowding_distance, non_dominated_ranks
from nas_lib.search.predictors import code_neighbours
from nas_lib.space import HybridSpace, NB201Space
from tests.conftest import ASSETS

NAMES = STRATEGIES.names()
# Fast settings for tests: nsga2 takes its cost from tell(extra=...) instead of building models.
OPTIONS = {"nsga2": {"cost": "extra"}}
TARGET = (3, 3, 2, 1, 3, 2)  # digits of the optimum of the synthetic problem


def matches(space, spec) -> float:  # noqa: ANN001
    """Easy synthetic fitness: how many edges agree with TARGET, plus a tie-breaking bump."""
    code = space.encode(spec)
    return sum(int(a == b) for a, b in zip(code, TARGET)) + 0.01 * code[0]


def cost(space, spec) -> float:  # noqa: ANN001
    return float(sum(space.encode(spec)))


def run(strategy: Strategy, fitness, budget: int, batch: int = 1) -> list[str]:  # noqa: ANN001
    """Drives ask/tell for `budget` queries; returns the asked specs as strings."""
    asked: list[str] = []
    while len(asked) < budget:
        specs = strategy.ask(min(batch, budget - len(asked)))
        asked += [strategy.space.to_string(s) for s in specs]
        strategy.tell(specs, [fitness(strategy.space, s) for s in specs], extra=[cost(strategy.space, s) for s in specs])
    return asked


def build(name: str, space, seed: int = 0) -> Strategy:  # noqa: ANN001
    return make_strategy(name, space, seed=seed, **OPTIONS.get(name, {}))


def test_registry_lists_every_strategy() -> None:
    assert set(NAMES) == {"random", "rea", "ga", "ednag", "llm_ranker", "surrogate", "reinforce", "nsga2", "pnas"}
    with pytest.raises(KeyError, match="known: .*rea"):
        make_strategy("nope", NB201Space())


@pytest.mark.parametrize("name", NAMES)
def test_small_search_on_nb201(name: str) -> None:
    space = NB201Space()
    strategy = build(name, space, seed=1)
    asked = run(strategy, matches, budget=30, batch=3)
    assert len(asked) == len(set(asked)) == 30  # never re-asks a spec
    spec, value = strategy.best()
    assert space.contains(spec)
    assert value == max(matches(space, space.from_string(a)) for a in asked)


@pytest.mark.parametrize("name", NAMES)
def test_small_search_on_hybrid(name: str) -> None:
    space = HybridSpace()
    strategy = build(name, space, seed=2)
    asked = run(strategy, lambda sp, s: -abs(s.depth - 8) + 0.01 * len(set(s.types)), budget=14, batch=2)
    assert len(set(asked)) == 14
    assert all(space.contains(space.from_string(a)) for a in asked)
    assert space.contains(strategy.best()[0])


@pytest.mark.parametrize("name", NAMES)
def test_search_on_tiny_table(name: str) -> None:
    table = load_table(ASSETS / "nb201_tiny.csv", "synthetic_acc")
    space = nb201_space_for(list(table))
    assert space.size() == len(table) == 729
    strategy = build(name, space, seed=3)
    run(strategy, lambda sp, s: table[sp.to_string(s)], budget=40, batch=4)
    spec, value = strategy.best()
    assert table[space.to_string(spec)] == value


@pytest.mark.parametrize("name", NAMES)
def test_reproducible_by_seed(name: str) -> None:
    space = NB201Space()
    first = run(build(name, space, seed=7), matches, budget=25)
    again = run(build(name, space, seed=7), matches, budget=25)
    other = run(build(name, space, seed=8), matches, budget=25)
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", NAMES)
def test_resume_from_state_dict_matches_uninterrupted_run(name: str) -> None:
    space = NB201Space()
    whole = build(name, space, seed=5)
    expected = run(whole, matches, budget=36, batch=2)
    part = build(name, space, seed=5)
    head = run(part, matches, budget=18, batch=2)
    state = json.loads(json.dumps(part.state_dict(), allow_nan=False))  # strictly JSON
    resumed = build(name, space, seed=999)  # the seed comes back from the state
    resumed.load_state_dict(state)
    tail = run(resumed, matches, budget=18, batch=2)
    assert head + tail == expected
    assert space.to_string(resumed.best()[0]) == space.to_string(whole.best()[0])


@functools.cache
def mean_best(name: str, seeds: int = 6, budget: int = 100) -> float:
    """Mean over seeds of the best fitness found on the easy synthetic problem."""
    bests = []
    for seed in range(seeds):
        strategy = build(name, NB201Space(), seed=seed)
        run(strategy, matches, budget=budget, batch=4)
        bests.append(strategy.best()[1])
    return float(np.mean(bests))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "random"])
def test_beats_random_on_easy_problem(name: str) -> None:
    # Random's mean best here is 4.0 of 6 matching edges; the others measured 4.7 (nsga2) to 6.0.
    # Predictor-guided strategies cost more per query and need fewer: they get 40 (random 3.8).
    budget = 40 if name in ("surrogate", "llm_ranker") else 100
    assert mean_best(name, budget=budget) > mean_best("random", budget=budget) + 0.3


def test_failed_evaluations_are_tolerated() -> None:
    space = NB201Space()
    for name in NAMES:
        strategy = build(name, space, seed=0)
        run(strategy, lambda sp, s: math.nan if sp.encode(s)[0] == 0 else matches(sp, s), budget=30, batch=3)
        assert not math.isnan(strategy.best()[1])


def test_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(TypeError, match="known options: population, sample"):
        make_strategy("rea", NB201Space(), pop=3)


def test_ga_tracks_entropy_per_generation() -> None:
    strategy = build("ga", NB201Space(), seed=0)
    run(strategy, matches, budget=120, batch=6)
    assert len(strategy.diversity) >= 3
    assert all(0.0 <= d <= 1.0 for d in strategy.diversity)
    assert strategy.diversity[-1] < strategy.diversity[0]  # selection concentrates the population
    cards = np.array([3, 3])
    assert shannon_entropy(np.array([[0, 1], [0, 2], [0, 0]]), cards) == pytest.approx(0.5)


def test_nsga2_front_is_non_dominated_and_uses_given_costs() -> None:
    space = NB201Space()
    strategy = build("nsga2", space, seed=0)
    run(strategy, matches, budget=40, batch=4)
    front = strategy.pareto_front()
    assert front and strategy.best()[1] == front[0][1][0] == max(f for _, f in strategy.history)
    points = [obj for _, obj in front]
    for f, c in points:
        assert not any((f2 >= f and c2 <= c) and (f2 > f or c2 < c) for f2, c2 in points)
    for spec, (_, c) in front:
        assert c == cost(space, spec)
    assert list(non_dominated_ranks(np.array([[0, 1], [1, 0], [1, 1], [2, 2]]))) == [0, 0, 1, 2]
    assert np.isinf(crowding_distance(np.array([[0.0, 1.0], [1.0, 0.0]]))).all()


def test_nsga2_default_cost_is_parameter_count() -> None:
    space = NB201Space()
    strategy = make_strategy("nsga2", space, seed=0)
    conv = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    skip = space.from_string("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|")
    strategy.tell([conv, skip], [2.0, 1.0])
    assert strategy.cost_of(conv) > strategy.cost_of(skip)
    assert len(strategy.pareto_front()) == 2  # accurate but large vs small but worse


def test_llm_ranker_without_endpoint_uses_surrogate() -> None:
    strategy = make_strategy("llm_ranker", NB201Space(), seed=0)
    run(strategy, matches, budget=20)
    assert strategy.ranker_used == "surrogate: no LLM endpoint configured"


class ScriptedClient:
    """Stands in for `LLMClient`: always picks candidate `index`, or fails."""

    def __init__(self, index: int | None) -> None:
        self.index, self.prompts = index, []

    def complete_json(self, *, system: str, user: str, schema, validate=None, name: str = "") -> SimpleNamespace:  # noqa: ANN001
        self.prompts.append(user)
        if self.index is None:
            return SimpleNamespace(value=None, fallback_reason="transport: timeout")
        value = schema(index=self.index)
        assert validate(value) == []
        return SimpleNamespace(value=value, fallback_reason=None)


def test_llm_ranker_follows_the_llm_pick_and_falls_back_on_failure() -> None:
    space = NB201Space()
    good = LLMRanker(space, seed=0, client=ScriptedClient(0), init=4)
    run(good, matches, budget=8)
    assert good.ranker_used == "llm" and good.used["llm"] == 4
    prompt = good._client.prompts[-1]
    assert "-> " in prompt and "candidates (index: code):" in prompt and "0: " in prompt
    bad = LLMRanker(space, seed=0, client=ScriptedClient(None), init=4)
    run(bad, matches, budget=6)
    assert bad.ranker_used == "surrogate: LLM call failed (transport: timeout)"
    assert LLMRanker._check(Pick(index=99), [None] * 3)


def test_code_neighbours_are_every_one_digit_change() -> None:
    space = NB201Space()
    spec = space.decode((3, 3, 2, 1, 3, 2))
    neighbours = code_neighbours(space, spec)
    assert len(neighbours) == 6 * 4
    for other in neighbours:
        assert sum(a != b for a, b in zip(space.encode(other), space.encode(spec))) == 1
    restricted = NB201Space([["nor_conv_3x3", "skip_connect"]] + [list(NB201Space().edge_ops[k]) for k in range(1, 6)])
    assert all(restricted.contains(s) for s in code_neighbours(restricted, restricted.sample(np.random.default_rng(0))))


@pytest.mark.parametrize("name", ["surrogate", "llm_ranker"])
def test_stalled_predictor_search_walks_the_best_cells_neighbours(name: str) -> None:
    # A fitness that rewards one cell and is flat elsewhere: no improvement after the first
    # results, so after `patience` queries every ask must be a neighbour of the best cell.
    space = NB201Space()
    strategy = make_strategy(name, space, seed=0, patience=3, init=5)
    flat = lambda sp, s: 1.0 if sp.encode(s) == (0, 0, 0, 0, 0, 0) else 0.0  # noqa: E731
    run(strategy, flat, budget=5)
    best_spec, _ = strategy.best()
    run(strategy, flat, budget=3)  # the stall: 3 more queries without improvement
    assert strategy.stalled()
    asked = strategy.ask(4)
    near = {space.to_string(s) for s in code_neighbours(space, best_spec)}
    assert {space.to_string(s) for s in asked} <= near
