"""The LLM provider: prompts an OpenAI-compatible model through `nas_lib.llm.LLMClient`.

The model writes a list-shaped answer (`nas_lib.pruning.answer`), which becomes the layer's
decision and must pass the layer's semantic checks; the client re-asks quoting what failed.
When it gives up (or no LLM is configured) the proposal carries no decision and a reason, and the
layer falls back to making no cut, flagged in the record. Every request of the layer (mode,
validation errors, raw answer, tokens, seconds) travels in ``meta["trace"]`` to the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from pydantic import BaseModel

from nas_lib.llm import LLMClient, LLMSettings, trace_json
from nas_lib.pruning.answer import LayerAnswer, answer_model, to_decision
from nas_lib.pruning.base import MeasureConfig, Proposal, PruningLayer
from nas_lib.pruning.groups import decision_problems
from nas_lib.pruning.prompts import condense_knowledge, knowledge_text, system_prompt, user_prompt
from nas_lib.space.base import SearchSpace


def propose_openai(
    layer: PruningLayer,
    space: SearchSpace,
    knowledge: Any,
    *,
    previous: Sequence[Any] = (),
    settings: LLMSettings | None = None,
    measure: MeasureConfig | None = None,
) -> Proposal:
    """The LLM's decision for `layer` on `space` (None with a reason when it has none)."""
    if settings is None or not settings.configured:
        return Proposal(None, "openai", fallback_reason="no LLM configured (set EHNAS_LLM_API_KEY or EHNAS_LLM_BASE_URL)")
    client = LLMClient(settings)
    text, summaries = condense_knowledge(client, layer, knowledge_text(knowledge))
    decision_model = layer.decision_model(space)

    def problems(answer: BaseModel) -> list[str]:  # an instance of the schema below, a LayerAnswer
        decision, errors = to_decision(cast(LayerAnswer, answer), decision_model)
        return errors if decision is None else decision_problems(layer, space, decision)

    result = client.complete_json(
        system=system_prompt(layer),
        user=user_prompt(layer, space, previous, text),
        schema=answer_model(decision_model),
        validate=problems,
        name=f"prune_{layer.name}",
    )
    calls = [*summaries, result]
    decision = to_decision(cast(LayerAnswer, result.value), decision_model)[0] if result.ok else None
    return Proposal(
        decision,
        "openai",
        model=settings.model,
        attempts=sum(r.attempts for r in calls),
        cached=all(r.cached for r in calls),
        prompt_tokens=sum(r.usage.prompt_tokens for r in calls),
        completion_tokens=sum(r.usage.completion_tokens for r in calls),
        fallback_reason="" if decision is not None else (result.fallback_reason or "invalid_output"),
        meta={"errors": result.errors[-5:], "summaries": len(summaries), "mode": result.mode, "trace": trace_json(calls)},
    )
