"""The offline provider (no API key needed): proxy-guided enrichment plus the knowledge rules.

It samples architectures from the current space, ranks them with a cheap proxy (never the
benchmark table), and keeps in each choice group the options that are not depleted among the
best samples (the hybrid macro layer treats depth as one more such group, trimmed from its
ends); then it applies the embedded knowledge base's structured rules. Its decisions use
the same schema as an LLM's, so it is the baseline any LLM provider must beat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from nas_lib.pruning.base import MeasureConfig, Option, Proposal, PruningLayer, option_key
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
        max_p: an option is dropped only if drawing so few of its uses among the best, at its
            overall share, has a binomial probability at most this. With the pipeline's 12
            samples (2 "best" ones) this bar is seldom met, where the ratio alone dropped
            whatever those 2 networks happened to lack; with 400 samples a real depletion meets it.
    """

    top_fraction: float = 0.2
    min_enrichment: float = 0.5
    min_support: int = 10
    max_p: float = 0.05


Stat = tuple[float, int, float]  # (enrichment ratio, uses overall, one-sided binomial p of the best's uses)
# A decision schema with these fields narrows a depth range (the hybrid macro layer's); the
# offline provider then trims depths depleted among the best samples, as it trims options.
DEPTH_FIELDS = frozenset({"min_depth", "max_depth"})


def enrichment(
    layer: PruningLayer, space: SearchSpace, specs: Sequence[Hashable], scores: np.ndarray, top_fraction: float
) -> dict[str, dict[str, Stat]]:
    """For each group and option: (its share of the group's uses among the best samples / its
    share among all samples, its number of uses, the binomial probability of so few uses among
    the best by chance).

    Shares count uses (blocks, edges), not networks, so an option is judged against the other
    options of its group, not by how often its block type appears.
    """
    top = _best(specs, scores, top_fraction)
    feats = [layer.features(space, s) for s in specs]
    out: dict[str, dict[str, Stat]] = {}
    for key, options in layer.groups(space).items():
        every = Counter(option_key(o) for f in feats for o in f.get(key, ()))
        best = Counter(option_key(o) for i, f in enumerate(feats) if i in top for o in f.get(key, ()))
        out[key] = {o: _stat(best[o], every[o], best, every) for o in map(option_key, options)}
    return out


def _best(specs: Sequence[Hashable], scores: np.ndarray, top_fraction: float) -> set[int]:
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    return set(order[: max(1, int(len(specs) * top_fraction))].tolist())


def _stat(in_best: int, overall: int, best: Counter, every: Counter) -> Stat:
    n_all, n_best = sum(every.values()), sum(best.values())
    if not overall or not n_best:
        return float("nan"), overall, 1.0
    share = overall / n_all
    return (in_best / n_best) / share, overall, float(binom.cdf(in_best, n_best, share))


def enriched_keep(
    groups: Mapping[str, tuple[Option, ...]], stats: Mapping[str, Mapping[str, Stat]], cfg: EnrichmentConfig
) -> dict[str, list[Option]]:
    """Per group, the options to keep: all but the clearly depleted ones, and never none."""
    keep: dict[str, list[Option]] = {}
    for key, options in groups.items():
        kept = [o for o in options if _keeps(stats[key][option_key(o)], cfg)]
        if not kept:  # keep the most enriched option so the group stays non-empty
            kept = [max(options, key=lambda o: np.nan_to_num(stats[key][option_key(o)][0], nan=-1.0))]
        if len(kept) < len(options):
            keep[key] = kept
    return keep


def _keeps(stat: Stat, cfg: EnrichmentConfig) -> bool:
    ratio, count, p = stat
    return count < cfg.min_support or not ratio < cfg.min_enrichment or p > cfg.max_p


def depth_range(specs: Sequence[Any], scores: np.ndarray, cfg: EnrichmentConfig) -> tuple[int, int]:
    """The sampled depth range less the end depths depleted among the best samples (hybrid
    macro layer; same test as any option, so a thin sample cuts nothing). `specs` have a ``depth``."""
    top = _best(specs, scores, cfg.top_fraction)
    every = Counter(s.depth for s in specs)
    best = Counter(s.depth for i, s in enumerate(specs) if i in top)
    depths = sorted(every)
    lo, hi = 0, len(depths) - 1
    while lo < hi and not _keeps(_stat(best[depths[lo]], every[depths[lo]], best, every), cfg):
        lo += 1
    while hi > lo and not _keeps(_stat(best[depths[hi]], every[depths[hi]], best, every), cfg):
        hi -= 1
    return depths[lo], depths[hi]


def sample_for_proposal(space: SearchSpace, score: Any, measure: MeasureConfig, rng: np.random.Generator) -> list[Hashable]:
    """`offline_samples` random draws from `space`, or, for a score backed by a table of
    precomputed proxy values (it has a ``pool``), every pooled cell inside `space` (free)."""
    pool = getattr(score, "pool", None)
    if pool is None:
        return list(dict.fromkeys(draw_specs(space, measure.offline_samples, rng)))
    return [s for s in pool if space.contains(s)]


def propose_offline(
    layer: PruningLayer,
    space: SearchSpace,
    knowledge: Any,
    *,
    previous: Sequence[Any] = (),
    settings: Any = None,
    measure: MeasureConfig,
    config: EnrichmentConfig = EnrichmentConfig(),
) -> Proposal:
    """The offline decision for `layer` on `space` (see the module docstring)."""
    rules = getattr(knowledge, "rules", None) or {}
    score = measure.proposal_fn()
    keep: dict[str, list[Option]] = {}
    extra: dict[str, Any] = {}
    if score is not None:
        specs = sample_for_proposal(space, score, measure, np.random.default_rng([measure.seed, len(previous)]))
        scores = np.array([float(score(s)) for s in specs])
        keep = enriched_keep(layer.groups(space), enrichment(layer, space, specs, scores, config.top_fraction), config)
        if DEPTH_FIELDS <= set(layer.decision_model(space).model_fields):  # the decision has a depth range
            extra["min_depth"], extra["max_depth"] = depth_range(specs, scores, config)
    decision = layer.decision_model(space)(
        keep=keep,
        rationale=f"options depleted among the best {config.top_fraction:.0%} of {measure.offline_samples} proxy-ranked samples were dropped",
        **extra,
    )
    decision, notes = apply_rules(layer, space, decision, rules)
    if decision_problems(layer, space, decision):  # a rule or a cut emptied the space: keep the enrichment cut only
        decision = layer.decision_model(space)(keep=keep, rationale=decision.rationale, **extra)
    return Proposal(decision, "offline", model="enrichment" + ("+rules" if notes else ""), meta={"rules_applied": notes})
