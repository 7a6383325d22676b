"""The LLM provider: prompts an OpenAI-compatible model through `nas_lib.llm.LLMClient`.

The client re-asks on answers that fail the schema or the semantic checks of the layer; when it
gives up (or no LLM is configured) the proposal carries no decision and a reason, and the layer
falls back to making no cut, flagged in the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas_lib.llm import LLMClient, LLMSettings
from nas_lib.pruning.base import MeasureConfig, Proposal, PruningLayer
from nas_lib.pruning.groups import decision_problems
from nas_lib.pruning.prompts import condense_knowledge, knowledge_text, system_prompt, user_prompt
from nas_lib.space.base import SearchSpace


def propose_openai(layer: PruningLayer, space: SearchSpace, knowledge: Any, *, previous: Sequence[Any] = (), settings: LLMSettings | None = None, measure: MeasureConfig | None = None) -> Proposal:
    """The LLM's decision for `layer` on `space` (None with a reason when it has none)."""
    if settings is None or not settings.configured:
        return Proposal(None, "openai", fallback_reason="no LLM configured (set EHNAS_LLM_API_KEY or EHNAS_LLM_BASE_URL)")
    client = LLMClient(settings)
    text, summaries = condense_knowledge(client, layer, knowledge_text(knowledge))
    result = client.complete_json(
        system=system_prompt(layer),
        user=user_prompt(layer, space, previous, text),
        schema=layer.decision_model(space),
        validate=lambda d: decision_problems(layer, space, d),
        name=f"prune_{layer.name}",
    )
    calls = [*summaries, result]
    return Proposal(
        result.value if result.ok else None,
        "openai",
        model=settings.model,
        attempts=sum(r.attempts for r in calls),
        cached=all(r.cached for r in calls),
        prompt_tokens=sum(r.usage.prompt_tokens for r in calls),
        completion_tokens=sum(r.usage.completion_tokens for r in calls),
        fallback_reason="" if result.ok else (result.fallback_reason or "invalid_output"),
        meta={"errors": result.errors[-5:], "summaries": len(summaries)},
    )
