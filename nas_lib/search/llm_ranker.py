"""LLM ranker: a language model picks the next architecture from a pool of unseen candidates.

Reference: Y. Hu et al., "LM-Searcher: Cross-domain Neural Architecture Search with LLMs via
Unified Numerical Encoding", 2025, arXiv 2509.05657 (architectures as numeric codes, the search
history with scores in the prompt, the model chooses among candidates).

Each pick shows the model the history as numeric codes (`space.encode`) with their fitness (best
`history` results, best first) and a numbered pool of unseen candidate codes (mutations of the
best results and uniform samples), and asks for the index of the most promising one. When no LLM
endpoint is configured, the client cannot be imported, or a call fails, a learned surrogate
(`predictors.RidgeEnsemble` on the one-hot code) ranks the same pool instead.
`ranker_used` says which ranker produced the picks ("llm", "surrogate: <reason>", or both).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field

from nas_lib.search.base import Spec
from nas_lib.search.predictors import candidate_pool
from nas_lib.search.registry import STRATEGIES
from nas_lib.search.surrogate import SurrogateSearch

SYSTEM_PROMPT = (
    "You are a neural architecture search assistant. Architectures are fixed-length integer codes; "
    "each digit is one design decision. Given evaluated codes with their fitness (higher is better) "
    "and a numbered list of unevaluated candidate codes, choose the candidate most likely to have "
    "the highest fitness. Answer with its index."
)


class Pick(BaseModel):
    """The LLM's answer: the index of the chosen candidate."""

    index: int = Field(description="index of the chosen candidate in the candidate list")
    reason: str = Field(default="", description="one short sentence")


@dataclasses.dataclass(frozen=True)
class LLMRankerConfig:
    """Options of the LLM ranker."""

    init: int = 10  # uniform samples before the first pick
    candidates: int = 30  # pool shown to the ranker per pick (prompt length grows with it)
    history: int = 40  # best results shown in the prompt
    model: str = "ridge"  # the fallback surrogate's predictor
    kappa: float = 0.5
    parents: int = 10
    patience: int = 10  # queries without improvement before the pool is the best cell's neighbours


@STRATEGIES.register("llm_ranker")
class LLMRanker(SurrogateSearch):
    """LM-Searcher-style picks by an LLM; a surrogate stands in when there is none."""

    name = "llm_ranker"
    Config = LLMRankerConfig

    def __init__(self, space: Any, seed: int = 0, client: Any = None, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self._client = client
        self._client_reason = ""
        self.used: dict[str, int] = {}  # ranker label -> picks it made

    @property
    def ranker_used(self) -> str:
        """Which ranker made the picks, e.g. ``llm`` or ``surrogate: no LLM endpoint configured``."""
        return ", ".join(sorted(self.used)) or "none yet"

    def _llm(self) -> Any:
        """An `LLMClient`, or None (with the reason kept) when there is no usable endpoint."""
        if self._client is not None or self._client_reason:
            return self._client
        try:
            from nas_lib.llm import LLMClient, LLMSettings
        except ImportError as err:
            self._client_reason = f"LLM client unavailable ({err.name})"
            return None
        settings = LLMSettings.from_env()
        if not settings.configured:
            self._client_reason = "no LLM endpoint configured"
            return None
        self._client = LLMClient(settings)
        return self._client

    def _propose(self, n: int) -> list[Spec]:
        if len(self.scored_history()) < self.config.init:
            return [self.fresh(lambda: self.space.sample(self.rng)) for _ in range(n)]
        return [self._pick() for _ in range(n)]

    def _pick(self) -> Spec:
        pool = self.unseen_neighbours(self.scored_history()) if self.stalled() else []
        pool = pool[: self.config.candidates] or candidate_pool(self, self.config.candidates, self.config.parents)
        if not pool:
            return self.fresh(lambda: self.space.sample(self.rng))
        client = self._llm()
        reason = self._client_reason
        if client is not None:
            result = client.complete_json(
                system=SYSTEM_PROMPT, user=self._prompt(pool), schema=Pick, validate=lambda v: self._check(v, pool), name="llm_ranker"
            )
            if result.value is not None:
                self._count("llm")
                chosen = pool[result.value.index]
                self._seen.add(self.space.to_string(chosen))
                return chosen
            reason = f"LLM call failed ({result.fallback_reason})"
        self._count(f"surrogate: {reason}")
        return self.rank_pool(1, pool)[0]

    def _count(self, label: str) -> None:
        self.used[label] = self.used.get(label, 0) + 1

    @staticmethod
    def _check(value: Pick, pool: list[Spec]) -> list[str]:
        return [] if 0 <= value.index < len(pool) else [f"index must be between 0 and {len(pool) - 1}"]

    def _prompt(self, pool: list[Spec]) -> str:
        """History and candidates as numeric codes (only codes and scores, no free text)."""
        best = sorted(self.scored_history(), key=lambda t: -t[1])[: self.config.history]
        cards = " ".join(str(c) for c in self.space.code_cardinalities())
        lines = [f"digit cardinalities: {cards}", "evaluated (code -> fitness):"]
        lines += [f"{' '.join(map(str, self.space.encode(s)))} -> {f:.4f}" for s, f in best]
        lines.append("candidates (index: code):")
        lines += [f"{i}: {' '.join(map(str, self.space.encode(s)))}" for i, s in enumerate(pool)]
        return "\n".join(lines)

    def _extra_state(self) -> dict[str, Any]:
        return {"used": self.used}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.used = {k: int(v) for k, v in state.get("used", {}).items()}
