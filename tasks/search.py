"""Search tasks: ask and tell, each a function of the search state (a JSON dict) and values.

Each generation is ask (the state comes back with the generation's architectures "pending";
the flow saves it before any scoring, so a killed generation asks nothing new when resumed),
score (the evaluation tasks and the store), tell (the state comes back with that generation's
rows; the flow saves it and ``07_search.parquet``). A resumed search continues from the saved
state at the generation it stopped in, with the strategy's random generator exactly where it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from nas_lib.evaluation import EvalRecord, fitness_of
from nas_lib.fidelity.plan import FITNESS, RUNG_PREFIX
from tasks.config import SearchConfig
from tasks.config_fidelity import PredictorSection
from tasks.evaluation import make_proxy
from tasks.spaces import space_from_dict

SEARCH_SCHEMA = pa.schema(
    [
        ("generation", pa.int64()),
        ("arch_id", pa.string()),
        ("arch", pa.string()),
        ("fitness", pa.float64()),
        ("fitness_proxy", pa.string()),
        ("params", pa.float64()),
        ("state", pa.string()),
        ("seconds", pa.float64()),
        ("best_so_far", pa.float64()),
    ]
)


class SearchSetup(BaseModel):
    """Everything a search step needs besides its state (a small frozen value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    search: SearchConfig
    population_size: int
    seed: int
    space: dict[str, Any]
    fitness_proxy: str
    predictor: PredictorSection | None = None  # the learned predictor over the rungs (evaluation.predictor)
    budgets: tuple[int, ...] = ()  # the rungs' budgets, when the predictor is on
    data: dict[str, Any] | None = None  # the run's data reference, for strategies that train on images (one-shot)

    @classmethod
    def of(cls, config: Any, space: dict[str, Any]) -> SearchSetup:
        """The setup of a `PipelineConfig` searching `space` (the pruned space's dict); with
        ``evaluation.fidelity`` on, the fitness is the score at the highest training rung, or with
        ``evaluation.predictor`` on, the trained or predicted score at the top rung."""
        from tasks.data_ref import DataRef

        e = config.evaluation
        fitness = FITNESS if e.fidelity.enabled else e.proxies[0]
        predictor = e.predictor if e.predictor.enabled else None
        budgets = e.fidelity.rungs(config.training.epochs) if predictor else ()
        return cls(
            search=config.search,
            population_size=config.population.size,
            seed=config.seed,
            space=space,
            fitness_proxy=fitness,
            predictor=predictor,
            budgets=budgets,
            data=DataRef.of(config).model_dump(),
        )


def _records(rows: Sequence[dict[str, Any]]) -> list[EvalRecord]:
    return [EvalRecord(**r) for r in rows]


def _strategy(setup: SearchSetup, state: dict[str, Any] | None) -> Any:
    from nas_lib.search import fitted_options, make_strategy, strategy_class

    options = fitted_options(setup.search.strategy, dict(setup.search.options), setup.population_size)
    if getattr(strategy_class(setup.search.strategy), "takes_data", False) and "data" not in options and setup.data is not None:
        from tasks.data_ref import local_path

        path = setup.data.get("path")
        options["data"] = {**setup.data, "path": local_path(path) if path else None}  # a URL read through this worker's copy
    strategy = make_strategy(setup.search.strategy, space_from_dict(setup.space), seed=setup.seed, **options)
    if state is not None:
        strategy.load_state_dict(state)
    return strategy


def learn(known: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`known` (arch -> its proxy scores and rung scores, JSON values) with what `rows` scored."""
    out = {arch: {"proxies": dict(f["proxies"]), "rungs": dict(f["rungs"])} for arch, f in known.items()}
    for r in rows:
        facts = out.setdefault(r["arch"], {"proxies": {}, "rungs": {}})
        if r["state"] != "ok" or r["value"] is None or r["proxy"] == FITNESS:
            continue
        if r["proxy"].startswith(RUNG_PREFIX):
            facts["rungs"][r["proxy"][len(RUNG_PREFIX) :]] = r["value"]
        else:
            facts["proxies"][r["proxy"]] = r["value"]
    return out


def fitness_by_id(setup: SearchSetup, rows: Sequence[dict[str, Any]], known: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """arch_id -> (fitness, what it is) for the architectures of `rows`: the fitness proxy's
    score, or with the predictor on the trained or predicted top-rung score (`rung_fitness`)."""
    ids = {r["arch"]: r["arch_id"] for r in rows}
    if setup.predictor is None:
        if setup.fitness_proxy == FITNESS:  # the score at the highest training rung: a validation accuracy
            name, higher = FITNESS, True
        else:
            proxy = make_proxy(setup.fitness_proxy)
            name, higher = proxy.name, proxy.higher_is_better
        return {arch_id: (f, name) for arch_id, f in fitness_of(_records(rows), name, higher).items()}
    from nas_lib.predictor import PredictorConfig
    from nas_lib.predictor.rungs import rung_fitness

    config = PredictorConfig(model=setup.predictor.model, seed=setup.seed)
    scored = rung_fitness(space_from_dict(setup.space), known, setup.budgets, config, setup.predictor.min_rows)
    return {ids[arch]: (f, FITNESS if source in ("trained", "highest rung") else source) for arch, (f, source) in scored.items() if arch in ids}


def generation_rows(fit: dict[str, tuple[float, str]], generation: int, rows: Sequence[dict[str, Any]], best: float) -> list[dict[str, Any]]:
    """One `SEARCH_SCHEMA` row per architecture of a generation (`fit`: `fitness_by_id`)."""
    params = {r["arch_id"]: r["value"] for r in rows if r["proxy"] == "params"}
    out, seen = [], set()
    for r in rows:
        if r["arch_id"] in seen:
            continue
        seen.add(r["arch_id"])
        f, name = fit.get(r["arch_id"], (math.nan, ""))
        best = f if math.isnan(best) or (not math.isnan(f) and f > best) else best
        seconds = sum(x["seconds"] for x in rows if x["arch_id"] == r["arch_id"])
        out.append(
            {
                "generation": generation,
                "arch_id": r["arch_id"],
                "arch": r["arch"],
                "fitness": f,
                "fitness_proxy": name,
                "params": params.get(r["arch_id"]),
                "state": "ok" if not math.isnan(f) else "failed",
                "seconds": seconds,
                "best_so_far": best,
            }
        )
    return out


def rescored(setup: SearchSetup, rows: Sequence[dict[str, Any]], known: dict[str, Any]) -> list[dict[str, Any]]:
    """Earlier generations' rows with the predictor's latest estimates (it was refitted on more
    trained architectures since), their running best recomputed; unchanged without the predictor."""
    if setup.predictor is None or not rows:
        return list(rows)
    fit = fitness_by_id(setup, [{"arch": r["arch"], "arch_id": r["arch_id"]} for r in rows], known)
    out, best = [], math.nan
    for r in rows:
        f, name = fit.get(r["arch_id"], (math.nan, r["fitness_proxy"]))
        best = f if math.isnan(best) or (not math.isnan(f) and f > best) else best
        out.append({**r, "fitness": f, "fitness_proxy": name, "state": "ok" if not math.isnan(f) else "failed", "best_so_far": best})
    return out


def initial_state(setup: SearchSetup, evaluations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A new search state, the strategy warmed with the scored initial population (the rows of
    ``06_evaluations``)."""
    strategy = _strategy(setup, None)
    _warn_about_warmup(setup, strategy)
    known = learn({}, evaluations) if setup.predictor else {}
    rows = generation_rows(fitness_by_id(setup, evaluations, known), 0, evaluations, math.nan)
    space = strategy.space
    strategy.tell([space.from_string(r["arch"]) for r in rows], [r["fitness"] for r in rows])
    return {"generation": 1, "pending": None, "rows": rows, "strategy": strategy.state_dict(), "known": known}


def _warn_about_warmup(setup: SearchSetup, strategy: Any) -> None:
    """Logs when the strategy's warm-up covers the whole budget (it would act as random search)."""
    import dataclasses
    import logging

    from nas_lib.search import warmup_note

    budget = setup.population_size + setup.search.generations * setup.search.per_generation
    note = warmup_note(strategy.name, dataclasses.asdict(strategy.config), budget)
    if note:
        logging.getLogger(__name__).warning(note)


@task(name="search-ask", cache_policy=NO_CACHE, task_run_name="search-ask-{generation}")
def propose_generation(state: dict[str, Any], generation: int, setup: SearchSetup) -> dict[str, Any]:
    """The state with one generation asked (``pending``); a pending ask of a killed run is kept."""
    if state["pending"] and state["generation"] == generation:
        return state
    strategy = _strategy(setup, state["strategy"])
    specs = strategy.ask(setup.search.per_generation)
    return {**state, "generation": generation, "pending": [strategy.space.to_string(s) for s in specs], "strategy": strategy.state_dict()}


@task(name="search-tell", cache_policy=NO_CACHE, task_run_name="search-tell-{generation}")
def record_generation(state: dict[str, Any], generation: int, rows: list[dict[str, Any]], setup: SearchSetup) -> dict[str, Any]:
    """The state after telling the strategy a generation's scores (unchanged when already told)."""
    if state["generation"] > generation or not state["pending"]:
        return state  # already told (resumed run)
    strategy = _strategy(setup, state["strategy"])
    known = learn(state.get("known", {}), rows) if setup.predictor else {}
    earlier = rescored(setup, state["rows"], known)
    best = max((r["best_so_far"] for r in earlier if not math.isnan(r["best_so_far"])), default=math.nan)
    new = generation_rows(fitness_by_id(setup, rows, known), generation, rows, best)
    strategy.tell([strategy.space.from_string(r["arch"]) for r in new], [r["fitness"] for r in new])
    return {**state, "generation": generation + 1, "pending": None, "rows": earlier + new, "strategy": strategy.state_dict(), "known": known}


def search_front(setup: SearchSetup, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The Pareto front of a multi-objective strategy (NSGA-II: fitness up, cost down) after the
    search, as `nas_lib.report.PARETO_SCHEMA` rows; [] for a single-objective strategy."""
    from nas_lib.report import search_front_rows

    return search_front_rows(_strategy(setup, state["strategy"]).front(), setup.fitness_proxy)


def top_k(rows: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The k best distinct architectures by fitness (failures last)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["state"] == "ok" and (r["arch_id"] not in best or r["fitness"] > best[r["arch_id"]]["fitness"]):
            best[r["arch_id"]] = r
    return sorted(best.values(), key=lambda r: -r["fitness"])[:k]
