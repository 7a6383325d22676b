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

from nas_lib.llm import LLMClient, LLMResult, LLMSettings, trace_json
from nas_lib.llm.context import prompt_char_budget
from nas_lib.llm.protocol import format_instructions
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
    decision_model = layer.decision_model(space)
    view = layer.view(space)
    schema = answer_model(decision_model, view.groups(), view.describe_extra())
    context = client.context_tokens()
    text, summaries = condense_knowledge(client, layer, fitting_knowledge(knowledge, layer, space, previous, schema, settings, context))

    def problems(answer: BaseModel) -> list[str]:  # an instance of the schema below, a LayerAnswer
        decision, errors = to_decision(cast(LayerAnswer, answer), decision_model)
        return errors if decision is None else decision_problems(layer, space, decision)

    def ask(knowledge_part: str) -> LLMResult:
        user = user_prompt(layer, space, previous, knowledge_part)
        return client.complete_json(system=system_prompt(layer), user=user, schema=schema, validate=problems, name=f"prune_{layer.name}")

    result = ask(text)
    calls = [*summaries, result]
    learned = client.context_tokens()
    if not result.ok and learned and learned != context and learned != settings.context_tokens:
        # the server named its context in rejecting the prompt (llama-cpp-python): fit it and ask once more
        text, more = condense_knowledge(client, layer, fitting_knowledge(knowledge, layer, space, previous, schema, settings, learned))
        result = ask(text)
        calls += [*more, result]
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
        meta={
            "errors": result.errors[-5:],
            "summaries": len(summaries),
            "mode": result.mode,
            "trace": trace_json(calls),
            "context_tokens": client.context_tokens(),
            "knowledge_chars": len(text),
        },
    )


def fitting_knowledge(
    knowledge: Any,
    layer: PruningLayer,
    space: SearchSpace,
    previous: Sequence[Any],
    schema: type[BaseModel],
    settings: LLMSettings,
    context_tokens: int | None,
) -> str:
    """The knowledge as text, shortened to what the server's context leaves once the rest of the
    prompt and the answer's token budget are counted (whole when the context is unknown)."""
    if not context_tokens:
        return knowledge_text(knowledge)
    separators = 64  # what the client adds between the parts, with room to spare
    fixed = len(system_prompt(layer)) + len(format_instructions(schema)) + len(user_prompt(layer, space, previous, "")) + separators
    return knowledge_text(knowledge, max_chars=prompt_char_budget(context_tokens, settings.max_tokens, fixed))
