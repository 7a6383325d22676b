"""Structured JSON answers from any OpenAI-compatible chat-completions server.

`LLMClient.complete_json` asks for output that follows a pydantic schema, degrading from strict
``json_schema`` to ``json_object`` to plain text (the mode that worked is remembered), validates
every answer locally, re-asks with the validation errors appended, retries transport faults with
backoff, caches validated answers on disk, and reports refusals and exhausted retries as a flagged
`LLMResult` instead of raising: the caller applies its documented fallback.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from pydantic import BaseModel, ValidationError

from nas_lib.llm.cache import ResponseCache, cache_key
from nas_lib.llm.parsing import extract_json_object, looks_like_refusal, schema_of, strict_schema
from nas_lib.llm.result import MODES, LLMResult, LLMUsage
from nas_lib.llm.settings import DUMMY_API_KEY, LLMSettings

log = logging.getLogger(__name__)

Validator = Callable[[BaseModel], list[str]]
# 408/409 are transient per the OpenAI SDK's own policy; 429 and 5xx are overload or outage.
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_FORMAT_REJECTED = (openai.BadRequestError, openai.UnprocessableEntityError)


@dataclass
class _Reply:
    text: str | None = None
    refusal: str | None = None
    failure: str | None = None


@dataclass
class _CallState:
    attempts: int = 0
    usage: LLMUsage = field(default_factory=LLMUsage)
    errors: list[str] = field(default_factory=list)


class LLMClient:
    """One endpoint and model; safe to reuse for many calls (it remembers the working mode) and
    to share between threads (the SDK client is thread-safe; the mode, temperature flag and usage
    totals change under a lock).

    Args:
        settings: endpoint, model, retry and cache policy.
        sleep: how to wait between transport retries (tests pass a recorder).
    """

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._sdk = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or DUMMY_API_KEY,
            timeout=settings.timeout_s,
            max_retries=0,  # retries are ours: the policy above must see every fault
        )
        self._mode_index = 0
        self._send_temperature = True  # reasoning models (o1, gpt-5...) reject any temperature
        self._cache = ResponseCache(settings.resolved_cache_dir) if settings.use_cache else None
        self.usage = LLMUsage()
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        """The structured-output mode the next request will use."""
        return MODES[self._mode_index]

    def complete_json(
        self,
        *,
        system: str,
        user: str,
        schema: type[BaseModel],
        validate: Validator | None = None,
        name: str = "call",
    ) -> LLMResult:
        """Asks for one JSON object that satisfies ``schema`` and ``validate``.

        Args:
            system: instructions; a description of the JSON format is appended.
            user: the task input (untrusted text belongs here, never in ``system``).
            schema: pydantic model the answer must parse into.
            validate: semantic checks returning a list of problems (empty = valid).
            name: short label for logs and the json_schema name.

        Returns:
            An `LLMResult`; ``ok`` is False (with ``fallback_reason``) after a refusal,
            exhausted retries or a non-retryable HTTP error. Never raises for those.
        """
        key = cache_key(model=self.settings.model, system=system, user=user, schema=schema_of(schema), temperature=self.settings.temperature)
        hit = self._from_cache(key, schema, validate)
        if hit is not None:
            log.info("llm %s: cache hit", name)
            return hit
        state = _CallState()
        messages = [{"role": "system", "content": system + "\n\n" + format_instructions(schema)}, {"role": "user", "content": user}]
        reply = _Reply()
        for ask in range(1 + self.settings.max_invalid_retries):
            reply = self._request(messages, schema, name, state)
            if reply.failure or reply.refusal is not None or looks_like_refusal(reply.text):
                reason = reply.failure or f"refusal: {self._redact(reply.refusal or reply.text or '')[:200]}"
                return self._finish(state, None, reply.text, reason, name)
            value, problems = check_answer(reply.text, schema, validate)
            if value is not None and not problems:
                self._to_cache(key, value, reply.text, state.usage)
                return self._finish(state, value, reply.text, None, name)
            state.errors += [f"ask {ask + 1}: {p}" for p in problems]
            messages += [{"role": "assistant", "content": reply.text or ""}, {"role": "user", "content": correction_prompt(problems)}]
        return self._finish(state, None, reply.text, "invalid_output: retries exhausted", name)

    # -- one request with transport retries and mode degradation ------------------------------
    def _request(self, messages: list[dict[str, str]], schema: type[BaseModel], name: str, state: _CallState) -> _Reply:
        failures = 0
        while True:
            mode = self.mode
            state.attempts += 1
            try:
                extra = {"temperature": self.settings.temperature} if self._send_temperature else {}
                response = self._sdk.chat.completions.create(model=self.settings.model, messages=messages, **extra, **response_format_kwargs(mode, schema, name))
            except _FORMAT_REJECTED as exc:
                if "temperature" in extra and "temperature" in str(exc).lower():
                    with self._lock:
                        self._send_temperature = False
                    state.errors.append(f"temperature rejected ({self._describe(exc)}); sending none")
                    continue
                if mode == "text":
                    return _Reply(failure=f"bad_request: {self._describe(exc)}")
                with self._lock:  # two threads rejected in the same mode degrade it once
                    self._mode_index = max(self._mode_index, MODES.index(mode) + 1)
                state.errors.append(f"{mode} rejected ({self._describe(exc)}); degrading to {self.mode}")
                log.warning("llm %s: server rejected %s output, using %s", name, mode, self.mode)
                continue
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                status = getattr(exc, "status_code", None)
                state.errors.append(f"transport: {self._describe(exc)}")
                if status is not None and status not in _RETRYABLE_STATUS and status < 500:
                    return _Reply(failure=f"http_{status}: {self._describe(exc)}")
                failures += 1
                if failures > self.settings.max_transport_retries:
                    return _Reply(failure=f"transport: retries exhausted ({self._describe(exc)})")
                self._sleep(self._backoff(failures, exc))
                continue
            return self._read_response(response, state)

    def _read_response(self, response: Any, state: _CallState) -> _Reply:
        used = LLMUsage(calls=1)
        if getattr(response, "usage", None) is not None:
            used.prompt_tokens = response.usage.prompt_tokens or 0
            used.completion_tokens = response.usage.completion_tokens or 0
        state.usage.add(used)
        with self._lock:
            self.usage.add(used)
        if not response.choices:
            return _Reply(text=None)
        message = response.choices[0].message
        return _Reply(text=message.content, refusal=getattr(message, "refusal", None) or None)

    def _backoff(self, failures: int, exc: Exception) -> float:
        """Server's Retry-After (capped) when given, else exponential backoff (capped)."""
        hinted = retry_after_seconds(getattr(exc, "response", None))
        if hinted is not None:
            return min(hinted, self.settings.retry_after_cap_s)
        return min(self.settings.backoff_s * 2 ** (failures - 1), self.settings.max_backoff_s)

    # -- cache and bookkeeping ----------------------------------------------------------------
    def _from_cache(self, key: str, schema: type[BaseModel], validate: Validator | None) -> LLMResult | None:
        entry = self._cache.get(key) if self._cache else None
        if entry is None:
            return None
        value, problems = check_answer(json.dumps(entry["value"]), schema, validate)
        if value is None or problems:
            return None  # schema or checks changed since: ask again
        return LLMResult(value=value, ok=True, mode=entry.get("mode", self.mode), attempts=0, cached=True, raw=entry.get("raw"))

    def _to_cache(self, key: str, value: BaseModel, raw: str | None, usage: LLMUsage) -> None:
        if self._cache is None:
            return
        entry = {"value": value.model_dump(mode="json"), "raw": raw, "mode": self.mode, "model": self.settings.model, "usage": vars(usage).copy()}
        try:
            self._cache.put(key, entry)
        except OSError as exc:  # a read-only cache must not fail the call
            log.warning("llm cache write failed: %s", exc)

    def _finish(self, state: _CallState, value: BaseModel | None, raw: str | None, reason: str | None, name: str) -> LLMResult:
        ok = value is not None
        level = logging.INFO if ok else logging.WARNING
        log.log(level, "llm %s: ok=%s mode=%s attempts=%d tokens=%d%s", name, ok, self.mode, state.attempts, state.usage.total_tokens, f" reason={reason}" if reason else "")
        errors = [self._redact(e) for e in state.errors]
        return LLMResult(value=value, ok=ok, mode=self.mode, attempts=state.attempts, cached=False, usage=state.usage, fallback_reason=reason, errors=errors, raw=raw)

    def _describe(self, exc: Exception) -> str:
        status = getattr(exc, "status_code", None)
        text = f"{type(exc).__name__}" + (f" {status}" if status else "") + f": {exc}"
        return self._redact(text)[:300]

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        return text.replace(key, "***") if key else text


def response_format_kwargs(mode: str, schema: type[BaseModel], name: str) -> dict[str, Any]:
    """The ``response_format`` argument for ``mode`` (nothing for plain text)."""
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    if mode == "json_schema":
        body, strict = strict_schema(schema)
        label = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
        return {"response_format": {"type": "json_schema", "json_schema": {"name": label, "schema": body, "strict": strict}}}
    return {}


def format_instructions(schema: type[BaseModel]) -> str:
    """Appended to every system prompt, so json_object and text modes know the shape too."""
    return (
        "Answer with exactly one JSON object and nothing else (no prose, no code fences). "
        "It must validate against this JSON Schema:\n" + json.dumps(schema_of(schema), separators=(",", ":"))
    )


def correction_prompt(problems: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems[:20])
    return f"Your previous answer was rejected:\n{listed}\nReply again with only the corrected JSON object."


def check_answer(text: str | None, schema: type[BaseModel], validate: Validator | None) -> tuple[BaseModel | None, list[str]]:
    """Parses and validates one answer; returns (value, problems)."""
    obj = extract_json_object(text)
    if obj is None:
        return None, ["the answer contains no JSON object"]
    try:
        value = schema.model_validate(obj)
    except ValidationError as exc:
        return None, [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
    problems = list(validate(value)) if validate else []
    return value, problems


def retry_after_seconds(response: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (number or HTTP date), if present."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if headers.get("retry-after-ms"):
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None
