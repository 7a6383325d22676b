"""The offline provider (no API key needed): proxy-guided enrichment plus the knowledge rules.

It samples architectures from the current space, ranks them with a cheap proxy (never the
benchmark table), and keeps in each choice group the options that are not depleted among the
best samples; then it applies the embedded knowledge base's structured rules. Its decisions use
the same schema as an LLM's, so it is the baseline any LLM provider must beat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas_lib.pruning.base import GroupDecision, HybridMacroDecision, MeasureConfig, Option, Proposal, PruningLayer, option_key
from nas_lib.pruning.groups import decision_problems
from nas_lib.pruning.measure import draw_specs
from nas_lib.pruning.rules import apply_rules
from nas_lib.space.base import SearchSpace


@dataclass(frozen=True)
class EnrichmentConfig:
    """Knobs of the enrichment rule.

    Attributes:
        top_fraction: the share of samples counted as "the best" (20%: wide enough for stable
            frequencies with 400 samples, narrow enough to differ from the whole).
        min_enrichment: an option is dropped when its frequency among the best is below this
            multiple of its overall frequency (0.5: clearly depleted, not noise).
        min_support: options seen fewer times than this are kept (too little evidence).
    """

    top_fraction: float = 0.2
    min_enrichment: float = 0.5
    min_support: int = 10


def enrichment(layer: PruningLayer, space: SearchSpace, specs: Sequence[Hashable], scores: np.ndarray, top_fraction: float) -> dict[str, dict[str, tuple[float, int]]]:
    """For each group and option: (its share of the group's uses among the best samples / its
    share among all samples, its number of uses).

    Shares count uses (blocks, edges), not networks, so an option is judged against the other
    options of its group, not by how often its block type appears.
    """
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    top = set(order[: max(1, int(len(specs) * top_fraction))].tolist())
    feats = [layer.features(space, s) for s in specs]
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for key, options in layer.groups(space).items():
        every = Counter(option_key(o) for f in feats for o in f.get(key, ()))
        best = Counter(option_key(o) for i, f in enumerate(feats) if i in top for o in f.get(key, ()))
        n_all, n_best = sum(every.values()), sum(best.values())
        out[key] = {}
        for o in map(option_key, options):
            ratio = (best[o] / n_best) / (every[o] / n_all) if every[o] and n_best else float("nan")
            out[key][o] = (ratio, every[o])
    return out


def enriched_keep(groups: Mapping[str, tuple[Option, ...]], stats: Mapping[str, Mapping[str, tuple[float, int]]], cfg: EnrichmentConfig) -> dict[str, list[Option]]:
    """Per group, the options to keep: all but the clearly depleted ones, and never none."""
    keep: dict[str, list[Option]] = {}
    for key, options in groups.items():
        kept = [o for o in options if _keeps(stats[key][option_key(o)], cfg)]
        if not kept:  # keep the most enriched option so the group stays non-empty
            kept = [max(options, key=lambda o: np.nan_to_num(stats[key][option_key(o)][0], nan=-1.0))]
        if len(kept) < len(options):
            keep[key] = kept
    return keep


def _keeps(stat: tuple[float, int], cfg: EnrichmentConfig) -> bool:
    ratio, count = stat
    return count < cfg.min_support or not ratio < cfg.min_enrichment


def depth_range(specs: Sequence[Hashable], scores: np.ndarray, top_fraction: float) -> tuple[int, int]:
    """The depths spanned by the best samples (hybrid macro layer)."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[: max(1, int(len(specs) * top_fraction))]
    depths = [specs[i].depth for i in order]
    return min(depths), max(depths)


def sample_for_proposal(space: SearchSpace, score: Any, measure: MeasureConfig, rng: np.random.Generator) -> list[Hashable]:
    """`offline_samples` random draws from `space`, or, for a score backed by a table of
    precomputed proxy values (it has a ``pool``), every pooled cell inside `space` (free)."""
    pool = getattr(score, "pool", None)
    if pool is None:
        return list(dict.fromkeys(draw_specs(space, measure.offline_samples, rng)))
    return [s for s in pool if space.contains(s)]


def propose_offline(layer: PruningLayer, space: SearchSpace, knowledge: Any, *, previous: Sequence[Any] = (), settings: Any = None, measure: MeasureConfig, config: EnrichmentConfig = EnrichmentConfig()) -> Proposal:
    """The offline decision for `layer` on `space` (see the module docstring)."""
    rules = getattr(knowledge, "rules", None) or {}
    score = measure.proposal_fn()
    keep: dict[str, list[Option]] = {}
    extra: dict[str, Any] = {}
    if score is not None:
        specs = sample_for_proposal(space, score, measure, np.random.default_rng([measure.seed, len(previous)]))
        scores = np.array([float(score(s)) for s in specs])
        keep = enriched_keep(layer.groups(space), enrichment(layer, space, specs, scores, config.top_fraction), config)
        if layer.decision_model(space) is HybridMacroDecision:
            extra["min_depth"], extra["max_depth"] = depth_range(specs, scores, config.top_fraction)
    decision = layer.decision_model(space)(keep=keep, rationale=f"options depleted among the best {config.top_fraction:.0%} of {measure.offline_samples} proxy-ranked samples were dropped", **extra)
    decision, notes = apply_rules(layer, space, decision, rules)
    if decision_problems(layer, space, decision):  # a rule or a cut emptied the space: keep the enrichment cut only
        decision = layer.decision_model(space)(keep=keep, rationale=decision.rationale, **extra)
    return Proposal(decision, "offline", model="enrichment" + ("+rules" if notes else ""), meta={"rules_applied": notes})
