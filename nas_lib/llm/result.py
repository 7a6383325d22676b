"""What one structured LLM call returns: the value or a flagged failure, never an exception."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

MODES: tuple[str, ...] = ("json_schema", "json_object", "text")


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
