"""Structured JSON answers from any OpenAI-compatible chat-completions server.

`LLMClient.complete_json` asks for output that follows a pydantic schema, degrading from strict
``json_schema`` to ``json_object`` to plain text the moment a server says it does not support a
mode (whatever the status: llama-cpp-python says so with a 500), and remembers the mode that
works per (base URL, model) across runs. It validates every answer locally, re-asks quoting the
validation errors, retries transport faults with backoff, caches validated answers on disk, and
reports refusals, malformed replies and exhausted retries as a flagged `LLMResult` with one
`Attempt` per request (mode, errors, raw answer, tokens, seconds) instead of raising.

A server that refuses connections after it has answered in this process is gone (stopped or
crashed): it is reported once with its URL, and every later call to that URL, from any client of
the process, fails at once with ``server_gone`` instead of waiting through transport retries. A
server that never answered gets the retries (it may be starting), then is marked gone the same way.

Transport retries are ours, not the SDK's (``max_retries=0``): the SDK retries every 5xx, so it
would repeat a 500 that rejects the format (tests/test_llm_server.py counts the requests).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from pydantic import BaseModel

from nas_lib.llm import protocol as wire
from nas_lib.llm.cache import ModeMemory, ResponseCache, cache_key
from nas_lib.llm.context import context_from_error, read_context_tokens
from nas_lib.llm.parsing import looks_like_refusal, schema_of
from nas_lib.llm.protocol import Validator, check_answer
from nas_lib.llm.result import MODES, RAW_CHARS, Attempt, LLMResult, LLMUsage
from nas_lib.llm.settings import DUMMY_API_KEY, LLMSettings

log = logging.getLogger(__name__)

__all__ = ["LLMClient", "check_answer", "forget_gone_servers"]

# Per process, by base URL: which servers answered once, and which then refused connections.
_reached: set[str] = set()
_gone: dict[str, str] = {}
_context: dict[str, int | None] = {}  # base URL + model -> context tokens (None: not reported)
_endpoints_lock = threading.Lock()


def forget_gone_servers() -> None:
    """Lets this process try again the servers it found gone (after a restart of the server)."""
    with _endpoints_lock:
        _gone.clear()
        _reached.clear()
        _context.clear()


def _refused(exc: openai.APIConnectionError) -> bool:
    """True when nothing listens at the address (not a timeout nor a reset mid-answer)."""
    # The SDK's HTTP library may be httpx or a fork of it, so its ConnectError is matched by name.
    return type(exc.__cause__).__name__ == "ConnectError" and not isinstance(exc, openai.APITimeoutError)


@dataclass
class _Reply:
    text: str | None = None
    refusal: str | None = None
    failure: str | None = None
    problems: list[str] = field(default_factory=list)  # known before parsing (a truncated answer)


@dataclass
class _CallState:
    name: str
    attempts: int = 0
    usage: LLMUsage = field(default_factory=LLMUsage)
    errors: list[str] = field(default_factory=list)
    trace: list[Attempt] = field(default_factory=list)
    last_exc: Exception | None = None  # the transport fault a backoff waits for (Retry-After)

    def log(self, mode: str, outcome: str, start: float, errors: list[str], **extra: Any) -> Attempt:
        attempt = Attempt(self.name, mode, outcome, errors=list(errors), seconds=time.perf_counter() - start, **extra)
        self.trace.append(attempt)
        return attempt


class LLMClient:
    """One endpoint and model; safe to reuse for many calls (it remembers the working mode) and
    to share between threads (the SDK client is thread-safe; the mode, the parameter flags and
    usage totals change under a lock).

    Args:
        settings: endpoint, model, retry and cache policy.
        sleep: how to wait between transport retries (tests pass a recorder).
    """

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._sdk = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key or DUMMY_API_KEY, timeout=settings.timeout_s, max_retries=0)
        self._cache = ResponseCache(settings.resolved_cache_dir) if settings.use_cache else None
        self._memory = ModeMemory(settings.resolved_cache_dir) if settings.use_cache and settings.mode == "auto" else None
        self._mode_index = MODES.index(self._initial_mode())
        self._send = {"temperature": True, "max_tokens": settings.max_tokens is not None}  # reasoning models reject both
        self.usage = LLMUsage()
        self._lock = threading.Lock()

    def _initial_mode(self) -> str:
        if self.settings.mode != "auto":
            return self.settings.mode
        learned = self._memory.get(self.settings.base_url, self.settings.model) if self._memory else None
        return learned if learned in MODES else MODES[0]

    @property
    def mode(self) -> str:
        """The structured-output mode the next request will use."""
        return MODES[self._mode_index]

    def complete_json(self, *, system: str, user: str, schema: type[BaseModel], validate: Validator | None = None, name: str = "call") -> LLMResult:
        """Asks for one JSON object that satisfies ``schema`` and ``validate``.

        Args:
            system: instructions; a description of the JSON format is appended.
            user: the task input (untrusted text belongs here, never in ``system``).
            schema: pydantic model the answer must parse into.
            validate: semantic checks returning a list of problems (empty = valid).
            name: short label for logs, the trace and the json_schema name.

        Returns:
            An `LLMResult`; ``ok`` is False (with ``fallback_reason``) after a refusal, a
            malformed reply, exhausted retries or a non-retryable HTTP error. Never raises for those.
        """
        s = self.settings
        key = cache_key(base_url=s.base_url, model=s.model, system=system, user=user, schema=schema_of(schema), temperature=s.temperature)
        hit = self._from_cache(key, schema, validate)
        if hit is not None:
            log.info("llm %s: cache hit", name)
            return hit
        state = _CallState(name)
        messages = [{"role": "system", "content": system + "\n\n" + wire.format_instructions(schema)}, {"role": "user", "content": user}]
        problems: list[str] = []
        for ask in range(1 + s.max_invalid_retries):
            reply = self._request(messages, schema, state)
            if reply.failure:
                return self._finish(state, None, reply.text, reply.failure)
            if reply.refusal is not None or looks_like_refusal(reply.text):
                state.trace[-1].outcome = "refusal"
                return self._finish(state, None, reply.text, f"refusal: {self._redact(reply.refusal or reply.text or '')[:200]}")
            value, problems = (None, reply.problems) if reply.problems else check_answer(reply.text, schema, validate)
            if value is not None and not problems:
                self._to_cache(key, value, reply.text, state.usage)
                return self._finish(state, value, reply.text, None)
            state.trace[-1].outcome = "truncated" if reply.problems else "invalid"
            state.trace[-1].errors = [self._redact(p) for p in problems]
            state.errors += [f"ask {ask + 1}: {p}" for p in problems]
            messages += [
                {"role": "assistant", "content": (reply.text or "")[: wire.REASK_RAW_CHARS]},
                {"role": "user", "content": wire.correction_prompt(problems)},
            ]
        last = "; ".join(problems[:3])
        return self._finish(state, None, reply.text, f"invalid_output: {1 + s.max_invalid_retries} answers rejected, last: {last}"[:400])

    # -- one request with transport retries and mode degradation ------------------------------
    def _request(self, messages: list[dict[str, str]], schema: type[BaseModel], state: _CallState) -> _Reply:
        failures = 0
        while True:
            gone = self._gone_reason()
            if gone is not None:
                return _Reply(failure=gone)
            mode, start = self.mode, time.perf_counter()
            state.attempts += 1
            try:
                response = self._sdk.chat.completions.create(
                    model=self.settings.model,
                    messages=messages,  # type: ignore[arg-type]  # plain role/content dicts
                    **self._optional_params(),
                    **wire.response_format_kwargs(mode, schema, state.name),
                )
            except openai.APIStatusError as exc:
                verdict = self._on_status(exc, mode, state, start)
            except openai.APIConnectionError as exc:  # refused connections, timeouts and resets
                state.log(mode, "transport", start, [self._describe(exc)])
                state.last_exc = exc
                verdict = "backoff"
                if _refused(exc) and self._endpoint in _reached:
                    return _Reply(failure=self._mark_gone(self._describe(exc)))
            except (openai.APIError, ValueError) as exc:  # a JSON Content-Type over a body that is not JSON
                state.log(mode, "malformed", start, [self._describe(exc)])
                return _Reply(failure=f"malformed_reply: {self._describe(exc)}")
            else:
                return self._read(response, mode, state, start)
            if isinstance(verdict, _Reply):
                return verdict
            if verdict == "backoff":
                failures += 1
                state.errors.append(f"transport: {state.trace[-1].errors[0]}")
                if failures > self.settings.max_transport_retries:
                    if isinstance(state.last_exc, openai.APIConnectionError) and _refused(state.last_exc):
                        return _Reply(failure=self._mark_gone(state.trace[-1].errors[0]))
                    return _Reply(failure=f"transport: retries exhausted ({state.trace[-1].errors[0]})")
                self._sleep(self._backoff(failures, state.last_exc))

    @property
    def _endpoint(self) -> str:
        return (self.settings.base_url or "default").rstrip("/")

    def context_tokens(self) -> int | None:
        """The server's context size: settings first, else what the server reports (asked
        once per process), else what an over-long prompt's rejection named; None if unknown."""
        if self.settings.context_tokens:
            return self.settings.context_tokens
        key = f"{self._endpoint} {self.settings.model}"
        with _endpoints_lock:
            if key in _context:
                return _context[key]
        found = read_context_tokens(
            self.settings.base_url, self.settings.model, api_key=self.settings.api_key, timeout_s=min(5.0, self.settings.timeout_s)
        )
        with _endpoints_lock:
            return _context.setdefault(key, found)

    def _gone_reason(self) -> str | None:
        with _endpoints_lock:
            why = _gone.get(self._endpoint)
        return f"server_gone: {self._endpoint} ({why})" if why is not None else None

    def _mark_gone(self, why: str) -> str:
        """Records the endpoint as gone; logs it the first time only."""
        with _endpoints_lock:
            first = self._endpoint not in _gone
            _gone.setdefault(self._endpoint, why)
        if first:
            log.error("llm server gone: %s refuses connections (%s); later calls fail at once", self._endpoint, why)
        return f"server_gone: {self._endpoint} ({why})"

    def _mark_reached(self) -> None:
        with _endpoints_lock:
            _reached.add(self._endpoint)

    def _optional_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._send["temperature"]:
            out["temperature"] = self.settings.temperature
        if self._send["max_tokens"]:
            out["max_tokens"] = self.settings.max_tokens
        return out

    def _on_status(self, exc: openai.APIStatusError, mode: str, state: _CallState, start: float) -> str | _Reply:
        """What to do after an HTTP error: "now" (ask again at once), "backoff", or a failure."""
        self._mark_reached()
        described = self._describe(exc)
        overflow = context_from_error(wire.error_text(exc)) if exc.status_code in (400, 413, 422) else None
        if overflow:
            with _endpoints_lock:
                _context[f"{self._endpoint} {self.settings.model}"] = overflow
        for param, sent in self._send.items():
            if sent and wire.rejects_parameter(exc, param):
                with self._lock:
                    self._send[param] = False
                state.log(mode, "http_error", start, [described])
                state.errors.append(f"{param} rejected ({described}); sending none")
                return "now"
        if wire.is_format_rejection(exc, mode):
            state.log(mode, "format_rejected", start, [described])
            self._degrade(mode, state, described, remember=wire.names_format(exc))
            return "now"
        status = exc.status_code
        if status in wire.RETRYABLE_STATUS or status >= 500:
            state.log(mode, "transport", start, [described])
            state.last_exc = exc
            return "backoff"
        state.log(mode, "http_error", start, [described])
        return _Reply(failure=f"{'bad_request' if status in (400, 422) else f'http_{status}'}: {described}")

    def _degrade(self, mode: str, state: _CallState, described: str, *, remember: bool) -> None:
        with self._lock:  # two threads rejected in the same mode degrade it once
            self._mode_index = max(self._mode_index, MODES.index(mode) + 1)
            now = self.mode
        state.errors.append(f"{mode} rejected ({described}); degrading to {now}")
        log.warning("llm %s: server rejected %s output, using %s", state.name, mode, now)
        if self._memory is not None and remember:
            try:
                self._memory.put(self.settings.base_url, self.settings.model, now)
            except OSError as exc:  # a read-only cache must not fail the call
                log.warning("llm mode memory write failed: %s", exc)

    def _read(self, response: Any, mode: str, state: _CallState, start: float) -> _Reply:
        self._mark_reached()
        got = wire.read_completion(response)
        used = LLMUsage(got.prompt_tokens, got.completion_tokens, 1)
        state.usage.add(used)
        with self._lock:
            self.usage.add(used)
        raw = self._redact(got.text)[:RAW_CHARS] if got.text else None
        tokens = {"prompt_tokens": got.prompt_tokens, "completion_tokens": got.completion_tokens, "finish_reason": got.finish_reason}
        if got.malformed:
            state.log(mode, "malformed", start, [self._redact(got.malformed)], **tokens)
            return _Reply(failure=f"malformed_reply: {self._redact(got.malformed)}")
        state.log(mode, "ok", start, [], raw=raw, **tokens)
        problems = [wire.truncation_problem(self.settings.max_tokens)] if got.finish_reason == "length" else []
        return _Reply(text=got.text, refusal=got.refusal, problems=problems)

    def _backoff(self, failures: int, exc: Exception | None) -> float:
        """Server's Retry-After (capped) when given, else exponential backoff (capped)."""
        hinted = wire.retry_after_seconds(getattr(exc, "response", None))
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

    def _finish(self, state: _CallState, value: BaseModel | None, raw: str | None, reason: str | None) -> LLMResult:
        ok = value is not None
        reason = self._redact(reason) if reason else None
        log.log(
            logging.INFO if ok else logging.WARNING,
            "llm %s: ok=%s mode=%s attempts=%d tokens=%d%s",
            state.name,
            ok,
            self.mode,
            state.attempts,
            state.usage.total_tokens,
            f" reason={reason}" if reason else "",
        )
        errors = [self._redact(e) for e in state.errors]
        return LLMResult(
            value=value,
            ok=ok,
            mode=self.mode,
            attempts=state.attempts,
            cached=False,
            usage=state.usage,
            fallback_reason=reason,
            errors=errors,
            raw=raw,
            trace=state.trace,
        )

    def _describe(self, exc: Exception) -> str:
        status = getattr(exc, "status_code", None)
        text = f"{type(exc).__name__}" + (f" {status}" if status else "") + f": {exc}"
        return self._redact(text)[:300]

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        return text.replace(key, "***") if key else text
