"""Pruning tasks: one task per layer (macro, hyperparameters, connections), one Parquet row each.

Proposals and retention are ranked with the run's fitness proxy through the evaluation store,
so every architecture scored while pruning is free when the population or the search meets it
again. LLM calls are retried on transient endpoint faults; a layer missing from the library
leaves the space unpruned and says so in its row (``fallback``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.artifacts import read_table, write_table
from tasks.context import LAYER_STEPS, load_config, load_space, save_space, step_path
from tasks.evaluation import primary_proxy, score_rows
from tasks.knowledge import load_run_knowledge
from tasks.retry import retry_transient

_FALLBACK_SCHEMA = pa.schema([
    ("layer", pa.string()), ("space", pa.string()), ("provider", pa.string()), ("log10_size_before", pa.float64()),
    ("log10_size_after", pa.float64()), ("fallback", pa.bool_()), ("fallback_reason", pa.string()), ("seconds", pa.float64()),
])


def pruning_schema() -> pa.Schema:
    try:
        from nas_lib.pruning import PRUNING_SCHEMA
    except ImportError:
        return _FALLBACK_SCHEMA
    return PRUNING_SCHEMA


def fitness_fn(run_dir: str | Path) -> Any:
    """spec -> fitness (higher is better, NaN on failure) through the evaluation store."""
    proxy = primary_proxy(run_dir)
    space = load_space(run_dir, upto="__base__")
    sign = 1.0 if proxy.higher_is_better else -1.0

    def score(spec: Any) -> float:
        rows = score_rows(run_dir, [space.to_string(spec)])
        value = next((r["value"] for r in rows if r["proxy"] == proxy.name and r["state"] == "ok"), None)
        return math.nan if value is None else sign * float(value)

    return score


def _previous_outcomes(run_dir: str | Path, layer: str) -> list[Any]:
    """The earlier layers' outcomes, rebuilt from their rows and saved spaces (LLM prompt context)."""
    from nas_lib.pruning import LayerOutcome

    outcomes = []
    for name, step in LAYER_STEPS.items():
        if name == layer:
            break
        if not step_path(run_dir, step).exists():
            continue
        for record in read_table(step_path(run_dir, step)).to_dict("records"):
            decision = json.loads(record["decision_json"]) if record.get("decision_json") else {}
            outcomes.append(LayerOutcome(name, load_space(run_dir, upto=name), decision, record))
    return outcomes


def _previous_space(run_dir: str | Path, layer: str) -> Any:
    names = list(LAYER_STEPS)
    earlier = names[: names.index(layer)]
    spaces = json.loads((Path(run_dir) / "space.json").read_text()) if (Path(run_dir) / "space.json").exists() else {}
    last = next((n for n in reversed(earlier) if n in spaces), None)
    return load_space(run_dir, upto=last or "__base__")


def prune_layer_rows(run_dir: str | Path, layer: str) -> list[dict[str, Any]]:
    """Runs one pruning layer on the space left by the earlier ones; saves the new space."""
    cfg, start = load_config(run_dir), time.perf_counter()
    space = _previous_space(run_dir, layer)
    try:
        from nas_lib.pruning import MeasureConfig, run_layer
    except ImportError:
        save_space(run_dir, layer, space)
        size = space.log10_size()
        return [{"layer": layer, "space": space.name, "provider": "none", "log10_size_before": size, "log10_size_after": size,
                 "fallback": True, "fallback_reason": "pruning layer not available: space left unpruned", "seconds": time.perf_counter() - start}]
    from nas_lib.llm import LLMSettings

    p = cfg.pruning
    measure = MeasureConfig(k=p.measure_samples, seed=cfg.seed, retention_floor=p.retention_floor,
                            score_fn=fitness_fn(run_dir), offline_samples=p.offline_samples)
    settings = LLMSettings.from_env(timeout_s=p.llm_timeout_s) if p.provider == "openai" else None
    outcome = run_layer(layer, space, load_run_knowledge(run_dir), provider=p.provider, settings=settings,
                        measure=measure, previous=_previous_outcomes(run_dir, layer), root=load_space(run_dir, upto="__base__"))
    save_space(run_dir, layer, outcome.space)
    return [outcome.record]


@task(name="prune-layer", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE, task_run_name="prune-{layer}")
def prune_layer(run_dir: str, layer: str) -> str:
    """Runs one pruning layer and writes its Parquet row (LLM faults retried, bad answers recorded)."""
    return str(write_table(step_path(run_dir, LAYER_STEPS[layer]), prune_layer_rows(run_dir, layer), pruning_schema()))


def skip_layer(run_dir: str | Path, layer: str) -> str:
    """Writes the row of a layer the config leaves out (space unchanged)."""
    space = _previous_space(run_dir, layer)
    save_space(run_dir, layer, space)
    size = space.log10_size()
    row = {"layer": layer, "space": space.name, "provider": "none", "log10_size_before": size, "log10_size_after": size,
           "fallback": True, "fallback_reason": "layer disabled in the config", "seconds": 0.0}
    return str(write_table(step_path(run_dir, LAYER_STEPS[layer]), [row], pruning_schema()))
