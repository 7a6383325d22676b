"""Pruning task: one task per layer (macro, hyperparameters, connections), one Parquet row each.

The task gets values: the layer, the space it starts from and the unpruned root (JSON dicts),
the earlier layers' outcomes, the knowledge rows of ``01_knowledge``, the pruning config section,
the scoring setup and the scores the store already holds for it. It returns the layer's row, the
narrowed space and the scores it paid for; the flow writes the row and the space and stores the
scores, so every architecture scored while pruning is free when the population or the search
meets it again. LLM calls are retried on transient endpoint faults.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.evaluation import EvalRecord
from nas_lib.pruning import PRUNING_SCHEMA
from tasks.config import PruningConfig
from tasks.evaluation import Scoring, score_records
from tasks.knowledge import knowledge_from_rows
from tasks.retry import retry_transient
from tasks.spaces import space_from_dict, space_to_dict

__all__ = ["PRUNING_SCHEMA", "prune_layer", "prune_layer_result", "skipped_layer_row"]


class _Fitness:
    """spec -> fitness (higher is better, NaN on failure); scores every configured proxy of a new
    architecture once, reusing `known` ones, and keeps the new records for the flow to store."""

    def __init__(self, scoring: Scoring, root: dict[str, Any], known: Sequence[dict[str, Any]]) -> None:
        self.scoring, self.root, self.space = scoring, root, space_from_dict(root)
        self.proxy = scoring.primary()
        self.records: dict[str, dict[str, EvalRecord]] = {}
        for row in known:
            self.records.setdefault(row["arch_id"], {})[row["proxy"]] = EvalRecord(**{**row, "cached": True})
        self.fresh: list[EvalRecord] = []

    def __call__(self, spec: Any) -> float:
        arch_id = self.space.arch_id(spec)
        have = self.records.setdefault(arch_id, {})
        missing = [name for name in self.scoring.proxies if name not in have]
        if missing:
            new = score_records(self.scoring, self.root, [(self.space.to_string(spec), missing)])
            have.update({r.proxy: r for r in new})
            self.fresh += new
        record = have.get(self.proxy.name)
        if record is None or record.state != "ok" or record.value is None:
            return math.nan
        return (1.0 if self.proxy.higher_is_better else -1.0) * float(record.value)


def previous_outcomes(previous: Sequence[dict[str, Any]]) -> list[Any]:
    """`LayerOutcome`s of the earlier layers (LLM prompt context) from ``{layer, space, record}`` values."""
    from nas_lib.pruning import LayerOutcome

    out = []
    for item in previous:
        record = item["record"]
        decision = json.loads(record["decision_json"]) if record.get("decision_json") else {}
        out.append(LayerOutcome(item["layer"], space_from_dict(item["space"]), decision, record))
    return out


def prune_layer_result(
    layer: str,
    space: dict[str, Any],
    root: dict[str, Any],
    previous: Sequence[dict[str, Any]],
    knowledge: Sequence[dict[str, Any]],
    pruning: PruningConfig,
    scoring: Scoring,
    known: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Runs one pruning layer on `space`.

    Returns:
        ``row`` (the layer's ``PRUNING_SCHEMA`` row), ``space`` (the narrowed space as a dict)
        and ``records`` (the evaluation rows scored on the way, for the store).
    """
    from nas_lib.llm import LLMSettings
    from nas_lib.pruning import MeasureConfig, run_layer

    fitness = _Fitness(scoring, root, known)
    measure = MeasureConfig(
        k=pruning.measure_samples,
        seed=scoring.seed,
        retention_floor=pruning.retention_floor,
        score_fn=fitness,
        offline_samples=pruning.offline_samples,
    )
    settings = LLMSettings.from_env(timeout_s=pruning.llm_timeout_s) if pruning.provider == "openai" else None
    outcome = run_layer(
        layer,
        space_from_dict(space),
        knowledge_from_rows(knowledge),
        provider=pruning.provider,
        settings=settings,
        measure=measure,
        previous=previous_outcomes(previous),
        root=space_from_dict(root),
    )
    return {"row": outcome.record, "space": space_to_dict(outcome.space), "records": [r.to_row() for r in fitness.fresh]}


@task(name="prune-layer", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE, task_run_name="prune-{layer}")
def prune_layer(
    layer: str,
    space: dict[str, Any],
    root: dict[str, Any],
    previous: list[dict[str, Any]],
    knowledge: list[dict[str, Any]],
    pruning: PruningConfig,
    scoring: Scoring,
    known: list[dict[str, Any]],
) -> dict[str, Any]:
    """Runs one pruning layer (LLM faults retried, bad answers recorded); see `prune_layer_result`."""
    return prune_layer_result(layer, space, root, previous, knowledge, pruning, scoring, known)


def skipped_layer_row(layer: str, space: dict[str, Any]) -> dict[str, Any]:
    """The row of a layer the config leaves out (the space stays as it is)."""
    size = space_from_dict(space).log10_size()
    return {
        "layer": layer,
        "space": space["name"],
        "provider": "none",
        "log10_size_before": size,
        "log10_size_after": size,
        "fallback": True,
        "fallback_reason": "layer disabled in the config",
        "seconds": 0.0,
    }
