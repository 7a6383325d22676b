"""Search tasks: the strategy's state lives in ``<run>/07_search_state.json`` between generations.

Each generation is ask (persisted as "pending" before any scoring, so a killed generation asks
nothing new when resumed), score (the evaluation tasks and their store), tell (persisted with
the rows of that generation). A resumed search loads the state and continues at the generation
it stopped in, with the strategy's random generator exactly where it was.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.artifacts import atomic_write_json, read_table, write_table
from nas_lib.evaluation import EvalRecord, fitness_of
from tasks.context import load_config, load_space, step_path
from tasks.evaluation import primary_proxy

SEARCH_SCHEMA = pa.schema([
    ("generation", pa.int64()), ("arch_id", pa.string()), ("arch", pa.string()), ("fitness", pa.float64()),
    ("fitness_proxy", pa.string()), ("params", pa.float64()), ("state", pa.string()), ("seconds", pa.float64()),
    ("best_so_far", pa.float64()),
])


def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "07_search_state.json"


def _records(rows: Sequence[dict[str, Any]]) -> list[EvalRecord]:
    return [EvalRecord(**r) for r in rows]


def _strategy(run_dir: str | Path, state: dict[str, Any] | None) -> Any:
    from nas_lib.search import fitted_options, make_strategy

    cfg = load_config(run_dir)
    options = fitted_options(cfg.search.strategy, dict(cfg.search.options), cfg.population.size)
    strategy = make_strategy(cfg.search.strategy, load_space(run_dir), seed=cfg.seed, **options)
    if state is not None:
        strategy.load_state_dict(state)
    return strategy


def generation_rows(run_dir: str | Path, generation: int, rows: Sequence[dict[str, Any]], best: float) -> list[dict[str, Any]]:
    """One `SEARCH_SCHEMA` row per architecture of a generation."""
    proxy = primary_proxy(run_dir)
    fit = fitness_of(_records(rows), proxy.name, proxy.higher_is_better)
    params = {r["arch_id"]: r["value"] for r in rows if r["proxy"] == "params"}
    out, seen = [], set()
    for r in rows:
        if r["arch_id"] in seen:
            continue
        seen.add(r["arch_id"])
        f = fit.get(r["arch_id"], math.nan)
        best = f if math.isnan(best) or (not math.isnan(f) and f > best) else best
        seconds = sum(x["seconds"] for x in rows if x["arch_id"] == r["arch_id"])
        out.append({"generation": generation, "arch_id": r["arch_id"], "arch": r["arch"], "fitness": f, "fitness_proxy": proxy.name,
                    "params": params.get(r["arch_id"]), "state": "ok" if not math.isnan(f) else "failed", "seconds": seconds, "best_so_far": best})
    return out


def start_search(run_dir: str | Path) -> dict[str, Any]:
    """Loads the saved search state, or starts one warmed with the scored initial population."""
    path = state_path(run_dir)
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    strategy = _strategy(run_dir, None)
    _warn_about_warmup(run_dir, strategy)
    evals = read_table(step_path(run_dir, "06_evaluations")).to_dict("records")
    rows = generation_rows(run_dir, 0, evals, math.nan)
    space = strategy.space
    strategy.tell([space.from_string(r["arch"]) for r in rows], [r["fitness"] for r in rows])
    state = {"generation": 1, "pending": None, "rows": rows, "strategy": strategy.state_dict()}
    atomic_write_json(path, state)
    return state


def _warn_about_warmup(run_dir: str | Path, strategy: Any) -> None:
    """Logs when the strategy's warm-up covers the whole budget (it would act as random search)."""
    import dataclasses
    import logging

    from nas_lib.search import warmup_note

    cfg = load_config(run_dir)
    budget = cfg.population.size + cfg.search.generations * cfg.search.per_generation
    note = warmup_note(strategy.name, dataclasses.asdict(strategy.config), budget)
    if note:
        logging.getLogger(__name__).warning(note)


@task(name="search-ask", cache_policy=NO_CACHE, task_run_name="search-ask-{generation}")
def propose_generation(run_dir: str, generation: int) -> list[str]:
    """Asks the strategy for one generation (reuses a pending ask of a killed run)."""
    state = start_search(run_dir)
    if state["pending"] and state["generation"] == generation:
        return list(state["pending"])
    strategy = _strategy(run_dir, state["strategy"])
    specs = strategy.ask(load_config(run_dir).search.per_generation)
    state.update(generation=generation, pending=[strategy.space.to_string(s) for s in specs], strategy=strategy.state_dict())
    atomic_write_json(state_path(run_dir), state)
    return list(state["pending"])


@task(name="search-tell", cache_policy=NO_CACHE, task_run_name="search-tell-{generation}")
def record_generation(run_dir: str, generation: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tells the strategy its scores, persists the state and ``07_search.parquet``; returns the top-k."""
    state = start_search(run_dir)
    if state["generation"] > generation or not state["pending"]:
        return top_k(state["rows"], load_config(run_dir).search.top_k_table)  # already told (resumed run)
    strategy = _strategy(run_dir, state["strategy"])
    best = max((r["best_so_far"] for r in state["rows"] if not math.isnan(r["best_so_far"])), default=math.nan)
    new = generation_rows(run_dir, generation, rows, best)
    strategy.tell([strategy.space.from_string(r["arch"]) for r in new], [r["fitness"] for r in new])
    state.update(generation=generation + 1, pending=None, rows=state["rows"] + new, strategy=strategy.state_dict())
    atomic_write_json(state_path(run_dir), state)
    write_table(step_path(run_dir, "07_search"), state["rows"], SEARCH_SCHEMA)
    return top_k(state["rows"], load_config(run_dir).search.top_k_table)


def finish_search(run_dir: str | Path) -> Path:
    """Writes ``07_search.parquet`` from the state (also when there were no generations)."""
    return write_table(step_path(run_dir, "07_search"), start_search(run_dir)["rows"], SEARCH_SCHEMA)


def top_k(rows: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The k best distinct architectures by fitness (failures last)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["state"] == "ok" and (r["arch_id"] not in best or r["fitness"] > best[r["arch_id"]]["fitness"]):
            best[r["arch_id"]] = r
    return sorted(best.values(), key=lambda r: -r["fitness"])[:k]
