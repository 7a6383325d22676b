"""The extractor interface and its registry: who writes the five-heading analyses.

``offline`` works everywhere (keyword and heading heuristics); ``openai`` asks any
OpenAI-compatible chat-completions server through `nas_lib.llm.LLMClient` and falls back to the
offline analysis, flagged, whenever the LLM refuses or keeps answering badly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas_lib.knowledge.analysis import Analysis
from nas_lib.registry import Registry

if TYPE_CHECKING:
    from nas_lib.llm import LLMSettings


@dataclass(frozen=True)
class ChunkOutcome:
    """One analysis and who wrote it. state: done | fallback (offline stood in for the LLM);
    llm: the LLM requests behind it as JSON (`nas_lib.llm.trace_json`), None without an LLM."""

    analysis: Analysis
    model: str
    state: str = "done"
    error: str | None = None
    llm: str | None = None


class Extractor(ABC):
    """Analyses chunks of one paper, then merges them into the paper's synthesis."""

    @classmethod
    def from_settings(cls, settings: LLMSettings | None) -> Extractor:
        """The extractor for these LLM settings (one that asks no LLM ignores them)."""
        return cls()

    @abstractmethod
    def analyze_chunk(self, title: str, chunk_id: int, n_chunks: int, text: str) -> ChunkOutcome:
        """The analysis of one chunk."""

    @abstractmethod
    def synthesize(self, title: str, analyses: list[Analysis]) -> ChunkOutcome:
        """One analysis of the whole paper from its chunks' analyses."""


EXTRACTORS: Registry[type[Extractor]] = Registry("knowledge extractor")
