"""What one structured LLM call returns: the value or a flagged failure, never an exception."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel

# Strongest constraint first. json_schema: OpenAI, vLLM, llama.cpp's server, Ollama; json_object
# with a "schema" beside the type: llama-cpp-python, which compiles it into a grammar; json_object:
# valid JSON of any shape; text: the schema is only in the prompt.
MODES: tuple[str, ...] = ("json_schema", "json_object_schema", "json_object", "text")
RAW_CHARS = 600  # raw answer kept per attempt: enough to see what the model wrote, small in Parquet


@dataclass
class LLMUsage:
    """Tokens and requests paid for (a cached answer costs zero)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def add(self, other: LLMUsage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Attempt:
    """One HTTP request of a call and what became of it.

    Attributes:
        call: the call's label (``prune_macro``, ``chunk_3``...).
        mode: structured-output mode the request used.
        outcome: ok | invalid (failed the schema or checks) | truncated (finish_reason=length) |
            refusal | format_rejected (the server does not support the mode) | transport
            (429, 5xx, timeout, reset) | malformed (a 200 that is not a chat completion) |
            http_error (any other rejected request).
        errors: why the attempt failed (validation messages, the server's error), key-free.
        raw: the answer text, truncated to `RAW_CHARS` (None when there was none).
        prompt_tokens: as reported by the server (0 when it reports none).
        completion_tokens: as reported by the server.
        seconds: wall time of the request.
        finish_reason: as reported by the server, if any.
    """

    call: str
    mode: str
    outcome: str
    errors: list[str] = field(default_factory=list)
    raw: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str | None = None


@dataclass
class LLMResult:
    """Outcome of `LLMClient.complete_json`.

    Attributes:
        value: the validated answer, or None when the call failed.
        ok: True when ``value`` passed the schema and the caller's semantic checks.
        mode: structured-output mode of the last request (json_schema, json_object or text).
        attempts: HTTP requests sent (transport retries and re-asks included; 0 when cached).
        cached: True when the answer came from the on-disk cache.
        usage: tokens and calls this call paid for.
        fallback_reason: why ``ok`` is False (refusal, invalid_output, transport, ...), else None.
        errors: every problem met on the way (validation messages, transport faults), key-free.
        raw: the last raw answer text, if any.
        trace: one `Attempt` per request, in order.
    """

    value: BaseModel | None
    ok: bool
    mode: str
    attempts: int = 0
    cached: bool = False
    usage: LLMUsage = field(default_factory=LLMUsage)
    fallback_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    raw: str | None = None
    trace: list[Attempt] = field(default_factory=list)


def trace_json(results: list[LLMResult]) -> str:
    """Every attempt of ``results`` as one compact JSON list (for Parquet and MLflow)."""
    return json.dumps([attempt_dict(a) for r in results for a in r.trace], separators=(",", ":"))


def attempt_dict(attempt: Attempt) -> dict[str, Any]:
    out = asdict(attempt)
    out["seconds"] = round(attempt.seconds, 3)
    return out
