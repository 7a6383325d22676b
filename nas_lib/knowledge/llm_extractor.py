"""LLM extractor: any OpenAI-compatible server writes the five-heading analyses.

Each chunk is one `LLMClient.complete_json` call under the `Analysis` schema plus
`analysis_problems`; the paper synthesis is one more call over the chunks' analyses. When the
LLM refuses or exhausts its retries the offline analysis stands in and the row says so
(``state="fallback"``, ``error=<reason>``), so one bad answer never loses a paper. Every row
carries its LLM requests in ``llm_json`` (mode, validation errors, raw answer, tokens, seconds).
"""

from __future__ import annotations

import json
from typing import cast

from nas_lib.knowledge.analysis import (
    CHUNK_SYSTEM,
    SYNTHESIS_SYSTEM,
    Analysis,
    analysis_problems,
    chunk_prompt,
    synthesis_prompt,
)
from nas_lib.knowledge.extractors import EXTRACTORS, ChunkOutcome, Extractor
from nas_lib.knowledge.offline import OfflineExtractor
from nas_lib.llm import LLMClient, LLMResult, LLMSettings, LLMUsage, trace_json

# Characters of chunk analyses per synthesis prompt (about 6000 tokens).
SYNTHESIS_INPUT_CHARS = 24000


def pack_batches(texts: list[str], budget: int) -> list[list[int]]:
    """Indices grouped greedily into batches of at most ``budget`` characters.

    Every batch of a multi-item input holds at least two items, so each round of merging
    shrinks the list and the rounds end.
    """
    batches: list[list[int]] = []
    size = 0
    for i, text in enumerate(texts):
        if batches and (size + len(text) <= budget or len(batches[-1]) < 2):
            batches[-1].append(i)
            size += len(text)
        else:
            batches.append([i])
            size = len(text)
    if len(batches) > 1 and len(batches[-1]) < 2:
        last = batches.pop()
        batches[-1].extend(last)
    return batches


def _problems(value: object) -> list[str]:
    return analysis_problems(value) if isinstance(value, Analysis) else ["not an Analysis"]


@EXTRACTORS.register("openai")
class LLMExtractor(Extractor):
    """Extractor backed by `LLMClient` (OpenAI, DashScope, vLLM, Ollama, llama.cpp)."""

    def __init__(self, settings: LLMSettings | None = None, client: LLMClient | None = None) -> None:
        self.client = client or LLMClient(settings or LLMSettings.from_env())
        self.offline = OfflineExtractor()
        self.usage = LLMUsage()

    @classmethod
    def from_settings(cls, settings: LLMSettings | None) -> LLMExtractor:
        return cls(settings=settings)

    def analyze_chunk(self, title: str, chunk_id: int, n_chunks: int, text: str) -> ChunkOutcome:
        result = self._ask(CHUNK_SYSTEM, chunk_prompt(title, chunk_id, n_chunks, text), f"chunk_{chunk_id}")
        if result.ok:
            return ChunkOutcome(cast(Analysis, result.value), self.client.settings.model, llm=trace_json([result]))
        return self._fallback(self.offline.analyze_chunk(title, chunk_id, n_chunks, text), result)

    def synthesize(self, title: str, analyses: list[Analysis]) -> ChunkOutcome:
        """Merges in rounds of batches that fit one prompt, so long papers lose no chunk."""
        level, errors, traces = list(analyses), [], []
        while True:
            batches = pack_batches([a.model_dump_json() for a in level], SYNTHESIS_INPUT_CHARS)
            merged = [self._merge(title, [level[i] for i in batch]) for batch in batches]
            errors += [m.error for m in merged if m.error]
            traces += [entry for m in merged for entry in json.loads(m.llm or "[]")]
            if len(merged) == 1:
                final = merged[0]
                llm = json.dumps(traces, separators=(",", ":"))
                return ChunkOutcome(final.analysis, final.model, "fallback" if errors else "done", "; ".join(errors) or None, llm)
            level = [m.analysis for m in merged]

    def _merge(self, title: str, analyses: list[Analysis]) -> ChunkOutcome:
        parts = [a.model_dump_json() for a in analyses]
        result = self._ask(SYNTHESIS_SYSTEM, synthesis_prompt(title, parts, SYNTHESIS_INPUT_CHARS), "synthesis")
        if result.ok:
            return ChunkOutcome(cast(Analysis, result.value), self.client.settings.model, llm=trace_json([result]))
        return self._fallback(self.offline.synthesize(title, analyses), result)

    def _ask(self, system: str, user: str, name: str) -> LLMResult:
        result = self.client.complete_json(system=system, user=user, schema=Analysis, validate=_problems, name=name)
        self.usage.add(result.usage)
        return result

    @staticmethod
    def _fallback(outcome: ChunkOutcome, result: LLMResult) -> ChunkOutcome:
        return ChunkOutcome(
            outcome.analysis, outcome.model, state="fallback", error=f"LLM fallback: {result.fallback_reason}", llm=trace_json([result])
        )
