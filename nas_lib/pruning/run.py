"""Running a layer: propose, check, fall back, guard, measure, record."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from nas_lib.pruning.base import GroupDecision, LayerOutcome, MeasureConfig, Proposal, PruningLayer
from nas_lib.pruning.connections import ConnectionsLayer
from nas_lib.pruning.groups import canonical, decision_problems, no_cut
from nas_lib.pruning.guard import GuardResult, guard
from nas_lib.pruning.hyperparameters import HyperparametersLayer
from nas_lib.pruning.macro import MacroLayer
from nas_lib.pruning.measure import Reference, draw_reference, retention, share_inside
from nas_lib.pruning.record import build_record
from nas_lib.registry import Registry
from nas_lib.space.base import SearchSpace

LAYER_REGISTRY: Registry[type[PruningLayer]] = Registry("pruning layer")
# The layers run in registration order, each on the space the one before left; the config's
# `pruning.layers`, `run_all_layers` and the pipeline's steps (`nas_lib.steps.Step`) read this
# registry. A new layer: its module, one line here.
LAYER_REGISTRY.add("macro", MacroLayer)
LAYER_REGISTRY.add("hyperparameters", HyperparametersLayer)
LAYER_REGISTRY.add("connections", ConnectionsLayer)
LAYERS: tuple[str, ...] = LAYER_REGISTRY.in_order()  # the built-in layers; code that must see later registrations reads the registry
PROVIDERS: Registry[Callable[..., Proposal]] = Registry("pruning provider")

MAX_REFERENCES = 8
_REFERENCES: dict[tuple[Any, ...], Reference] = {}  # one scored reference per unpruned space and score


def unpruned(space: SearchSpace) -> SearchSpace:
    """The full space of `space`'s kind (what retention is measured against by default)."""
    return type(space)()


def reference_for(root: SearchSpace, measure: MeasureConfig) -> Reference:
    """The scored reference of `root`, drawn once per (space, k, seed, score function)."""
    # The function itself is part of the key (not its id, which a new function may reuse).
    key = (root.name, root.state_key(), measure.k, measure.seed, measure.score_fn, measure.reference_specs)
    if key not in _REFERENCES:
        if len(_REFERENCES) >= MAX_REFERENCES:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = draw_reference(root, measure)
    return _REFERENCES[key]


def checked_proposal(layer: PruningLayer, space: SearchSpace, proposal: Proposal) -> tuple[GroupDecision, str]:
    """The proposal's decision, or no cut with the reason it was rejected."""
    if proposal.decision is None:
        return no_cut(layer, space), proposal.fallback_reason or "the provider returned no decision"
    problems = decision_problems(layer, space, proposal.decision)
    if problems:
        return no_cut(layer, space), "invalid decision: " + "; ".join(problems[:5])
    return canonical(layer, space, proposal.decision), ""


def run_layer(
    layer: str,
    space: SearchSpace,
    knowledge: Any,
    *,
    provider: str,
    settings: Any,
    measure: MeasureConfig,
    previous: Sequence[LayerOutcome] = (),
    root: SearchSpace | None = None,
) -> LayerOutcome:
    """Runs one pruning layer on `space` (already narrowed by `previous`).

    Args:
        layer: a name in `LAYER_REGISTRY`.
        space: the current space.
        knowledge: a `KnowledgeBase` (or None); the offline provider reads ``.rules``, the LLM
            provider ``.text()``.
        provider: ``offline`` or ``openai`` (see `PROVIDERS`).
        settings: `LLMSettings` for the LLM provider (None: offline only).
        measure: measurement and guard settings; without ``score_fn`` nothing is measured or guarded.
        previous: the earlier layers' outcomes (their decisions go into the LLM prompt).
        root: the unpruned space retention is measured against (default: the full space).

    Returns:
        The narrowed space, the decision applied and its pruning.parquet record.
    """
    start = time.perf_counter()
    impl = LAYER_REGISTRY.get(layer)()
    proposal = PROVIDERS.get(provider)(impl, space, knowledge, previous=previous, settings=settings, measure=measure)
    decision, reason = checked_proposal(impl, space, proposal)
    root = root if root is not None else unpruned(space)
    reference = reference_for(root, measure) if measure.score_fn is not None else None
    if reference is not None:
        by = reference_for(root, replace(measure, score_fn=measure.guard_fn, reference_specs=None)) if measure.guard_fn else reference
        guarded = guard(impl, space, decision, by, measure.retention_floor)
        # what the provider's own cut keeps, always against the measured (not the guard's) ranking
        guarded.proposed_top1 = share_inside(impl.apply(space, decision), reference.top(0.01))
        measured = retention(reference, guarded.space, root.size())
    else:
        guarded, measured = GuardResult(decision, impl.apply(space, decision), False), None
    record = build_record(
        layer,
        space,
        root.size(),
        proposal,
        proposal.decision if not reason else None,
        guarded,
        measured,
        len(reference.specs) if reference else 0,
        bool(reference and reference.exhaustive),
        reason,
        time.perf_counter() - start,
    )
    return LayerOutcome(layer, guarded.space, guarded.decision.model_dump(mode="json"), record)


def run_all_layers(space: SearchSpace, knowledge: Any, *, provider: str, settings: Any, measure: MeasureConfig) -> list[LayerOutcome]:
    """Runs the registered layers in order, each on the previous one's space; `space` is the unpruned root."""
    outcomes: list[LayerOutcome] = []
    current = space
    for name in LAYER_REGISTRY.in_order():
        outcome = run_layer(name, current, knowledge, provider=provider, settings=settings, measure=measure, previous=outcomes, root=space)
        outcomes.append(outcome)
        current = outcome.space
    return outcomes
