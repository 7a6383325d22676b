"""Printing and JSON summaries of pruning outcomes, and the two NB201 reference cuts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nas_lib.pruning.base import LayerOutcome
from nas_lib.pruning.measure import Reference, retention
from nas_lib.space.nb201 import OPS, NB201Space

BENCH_FIELDS = (
    "log10_size_before",
    "log10_size_after",
    "reduction_pct",
    "total_reduction_pct",
    "kept_fraction",
    "top1pct_retention",
    "top5pct_retention",
    "lift",
    "proposed_top1pct_retention",
    "fallback",
    "fallback_reason",
    "guard_relaxed",
    "provider",
    "model",
    "attempts",
    "seconds",
    "reference_size",
)


def format_table(outcomes: Sequence[LayerOutcome]) -> str:
    """One line per layer: sizes, reduction and retention, and whether it fell back or was relaxed."""
    head = f"{'layer':<16}{'log10 before':>13}{'log10 after':>12}{'cut %':>8}{'kept':>7}{'top1%':>7}{'top5%':>7}{'lift':>7}  flags"
    lines = [head, "-" * len(head)]
    for o in outcomes:
        r = o.record
        flags = ",".join(f for f, on in (("fallback", r["fallback"]), ("guard_relaxed", r["guard_relaxed"])) if on) or "-"
        lines.append(
            f"{o.layer:<16}{r['log10_size_before']:>13.3f}{r['log10_size_after']:>12.3f}{r['reduction_pct']:>8.1f}"
            f"{_f(r['kept_fraction'])}{_f(r['top1pct_retention'])}{_f(r['top5pct_retention'])}{_f(r['lift'])}  {flags}"
        )
    return "\n".join(lines)


def _f(value: float) -> str:
    return f"{'n/a':>7}" if value is None or math.isnan(value) else f"{value:>7.3f}"


def bench_summary(outcomes: Sequence[LayerOutcome]) -> list[dict[str, Any]]:
    """The per-layer entries of the bench JSON."""
    return [{"name": o.layer, **{k: _clean(o.record[k]) for k in BENCH_FIELDS}, "decision": o.decision} for o in outcomes]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def nb201_reference_cuts(reference: Reference, root: NB201Space) -> dict[str, dict[str, float]]:
    """The two cuts the NB201 table teaches: drop none and avg_pool_3x3 on every edge (the
    "obvious" one), and fix the input->output edge (edge 3) to skip_connect."""
    obvious = root.restrict([[op for op in OPS if op not in ("none", "avg_pool_3x3")]] * 6)
    edge3 = root.restrict([OPS, OPS, OPS, ("skip_connect",), OPS, OPS])
    out = {}
    for name, cut in (("drop_none_and_avg_pool_everywhere", obvious), ("edge3_skip_connect", edge3)):
        r = retention(reference, cut, root.size())
        out[name] = {
            "reduction_pct": 100.0 * (1 - cut.size() / root.size()),
            "top1pct_retention": r.top1,
            "top5pct_retention": r.top5,
            "lift": r.lift,
        }
    return out
