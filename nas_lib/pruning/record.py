"""The schema of pruning.parquet (one row per layer) and how a row is assembled."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from nas_lib.pruning.base import GroupDecision, Proposal
from nas_lib.pruning.guard import GuardResult
from nas_lib.pruning.measure import Retention
from nas_lib.space.base import SearchSpace

PRUNING_SCHEMA = pa.schema(
    [
        ("layer", pa.string()),
        ("space", pa.string()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("log10_size_before", pa.float64()),
        ("log10_size_after", pa.float64()),
        ("reduction_pct", pa.float64()),  # this layer's cut: 100 * (1 - after / before)
        ("total_reduction_pct", pa.float64()),  # against the unpruned space
        ("kept_fraction", pa.float64()),  # share of the unpruned reference still inside
        ("top1pct_retention", pa.float64()),
        ("top5pct_retention", pa.float64()),
        ("lift", pa.float64()),  # top-1% retention / kept fraction (random cut: 1)
        ("proposed_top1pct_retention", pa.float64()),  # before the guard
        ("reference_size", pa.int64()),
        ("exhaustive", pa.bool_()),
        ("fallback", pa.bool_()),
        ("fallback_reason", pa.string()),
        ("guard_relaxed", pa.bool_()),
        ("guard_steps", pa.string()),  # JSON list of widening steps
        ("attempts", pa.int64()),
        ("cached", pa.bool_()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("decision_json", pa.string()),  # the decision applied (after the guard)
        ("proposed_json", pa.string()),  # what the provider returned (null on fallback)
        ("seconds", pa.float64()),
        ("llm_mode", pa.string()),  # structured-output mode of the LLM's last request (null: no LLM)
        # JSON list, one object per LLM request: call, mode, outcome, errors, raw (truncated),
        # prompt/completion tokens, seconds, finish_reason. Says why an answer was rejected.
        ("llm_attempts_json", pa.string()),
    ]
)

NAN = float("nan")


def size_change(before: int, after: int) -> tuple[float, float, float]:
    """(log10 before, log10 after, reduction %) from exact sizes."""
    return math.log10(before), math.log10(after), 100.0 * (1.0 - after / before)


def build_record(
    layer: str,
    space_before: SearchSpace,
    root_size: int,
    proposal: Proposal,
    proposed: GroupDecision | None,
    guarded: GuardResult,
    measured: Retention | None,
    reference_size: int,
    exhaustive: bool,
    fallback_reason: str,
    seconds: float,
) -> dict[str, Any]:
    """One pruning.parquet row."""
    before, after = space_before.size(), guarded.space.size()
    log_before, log_after, reduction = size_change(before, after)
    return {
        "layer": layer,
        "space": space_before.name,
        "provider": proposal.provider,
        "model": proposal.model,
        "log10_size_before": log_before,
        "log10_size_after": log_after,
        "reduction_pct": reduction,
        "total_reduction_pct": 100.0 * (1.0 - after / root_size),
        "kept_fraction": measured.kept_fraction if measured else NAN,
        "top1pct_retention": measured.top1 if measured else NAN,
        "top5pct_retention": measured.top5 if measured else NAN,
        "lift": measured.lift if measured else NAN,
        "proposed_top1pct_retention": guarded.proposed_top1,
        "reference_size": reference_size,
        "exhaustive": exhaustive,
        "fallback": bool(fallback_reason),
        "fallback_reason": fallback_reason,
        "guard_relaxed": guarded.relaxed,
        "guard_steps": json.dumps(guarded.steps),
        "attempts": proposal.attempts,
        "cached": proposal.cached,
        "prompt_tokens": proposal.prompt_tokens,
        "completion_tokens": proposal.completion_tokens,
        "decision_json": guarded.decision.model_dump_json(),
        "proposed_json": proposed.model_dump_json() if proposed is not None else None,
        "seconds": seconds,
        "llm_mode": proposal.meta.get("mode"),
        "llm_attempts_json": proposal.meta.get("trace"),
    }
