"""The wire side of a structured call: what to send per mode, how to read what comes back, and
how to tell a server that does not support a mode from one that is merely overloaded.

Pure functions over the openai SDK's objects; `nas_lib.llm.client` holds the policy.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import BaseModel, ValidationError

from nas_lib.llm.parsing import extract_json_object, schema_of, strict_schema

Validator = Callable[[BaseModel], list[str]]

# A rejection of the requested output format names it, whatever the status: OpenAI and vLLM say
# 400 "response_format ...", llama-cpp-python answers 500 with a pydantic error on
# body.response_format.type ("Input should be 'text' or 'json_object'"), others 422.
_FORMAT_WORDS = re.compile(r"response_format|response format|json_schema|json schema|json_object|structured output", re.IGNORECASE)
# A prompt longer than the model's context is a 400 too, and no mode makes it fit.
_CONTEXT_WORDS = re.compile(r"context[ _-](length|window|size)|maximum context", re.IGNORECASE)
# Statuses that are about the caller or the load, never about the request's format.
_NOT_FORMAT_STATUS = frozenset({401, 403, 404, 408, 409, 429})
# 408/409 are transient per the OpenAI SDK's own policy; 429 and 5xx are overload or outage.
RETRYABLE_STATUS = frozenset({408, 409, 429})
REASK_RAW_CHARS = 2000  # the rejected answer quoted back to the model in a re-ask


@dataclass
class Completion:
    """What a 200 held: the answer text or a refusal, or why it is not a chat completion."""

    text: str | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    malformed: str | None = None


def error_text(exc: openai.APIStatusError) -> str:
    """The server's error message and body as one string (the SDK puts both in ``str``)."""
    body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, default=str)
    return f"{exc} {body}"


def is_format_rejection(exc: openai.APIStatusError, mode: str) -> bool:
    """True when the server refused ``mode`` itself: a deterministic answer, never retried.

    400 and 422 in a structured mode count as such (the request differs from a text one only
    in ``response_format``) unless they are about the context length; any other status
    counts when its message names the format.
    """
    if mode == "text" or exc.status_code in _NOT_FORMAT_STATUS or _CONTEXT_WORDS.search(error_text(exc)):
        return False
    return exc.status_code in (400, 422) or names_format(exc)


def names_format(exc: openai.APIStatusError) -> bool:
    """True when the error names response_format, json_schema, json_object or structured output:
    only then is the degraded mode remembered beyond this client."""
    return bool(_FORMAT_WORDS.search(error_text(exc)))


def rejects_parameter(exc: openai.APIStatusError, name: str) -> bool:
    """True when a 400/422 names ``name`` (reasoning models reject temperature and max_tokens)."""
    return exc.status_code in (400, 422) and name in str(exc).lower()


def read_completion(response: Any) -> Completion:
    """The answer in ``response``, or ``malformed`` saying why there is none.

    The SDK hands back the body as a plain string when the server's Content-Type is not JSON
    (an HTML error page, plain text) and an unvalidated object for JSON that is not a chat
    completion, so every field is looked up defensively.
    """
    if isinstance(response, str):
        return Completion(malformed=f"the 200 body is not a chat completion: {response.strip()[:160]!r}")
    usage = getattr(response, "usage", None)
    tokens: dict[str, Any] = {
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
    }
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        return Completion(malformed="the reply has no choices", **tokens)
    message = getattr(choices[0], "message", None)
    if message is None:
        return Completion(malformed="the reply's first choice has no message", **tokens)
    content = getattr(message, "content", None)
    refusal = getattr(message, "refusal", None) or None
    return Completion(
        text=content if isinstance(content, str) else None, refusal=refusal, finish_reason=getattr(choices[0], "finish_reason", None), **tokens
    )


def response_format_kwargs(mode: str, schema: type[BaseModel], name: str) -> dict[str, Any]:
    """The ``response_format`` argument for ``mode`` (nothing for plain text)."""
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    if mode == "json_object_schema":
        # llama-cpp-python turns the schema into a decoding grammar, length limits and enums included (maxItems and
        # maxLength are what stop a small model from looping to max_tokens), so it gets the whole schema, not the strict one
        return {"response_format": {"type": "json_object", "schema": schema_of(schema)}}
    if mode == "json_schema":
        body, strict = strict_schema(schema)
        label = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
        return {"response_format": {"type": "json_schema", "json_schema": {"name": label, "schema": body, "strict": strict}}}
    return {}


def format_instructions(schema: type[BaseModel]) -> str:
    """Appended to every system prompt, so json_object and text modes know the shape too.

    The schema shown is trimmed to what a model needs to write a valid answer (types, field
    descriptions, what is required); titles, defaults, class docstrings and closing keywords
    only cost a small model's context. The answer is validated against the full schema.
    """
    return (
        "Answer with exactly one JSON object and nothing else (no prose, no code fences). "
        "Fields not listed as required may be left out. It must validate against this JSON Schema:\n"
        + json.dumps(prompt_schema(schema_of(schema)), separators=(",", ":"))
    )


def prompt_schema(node: Any, *, in_properties: bool = False) -> Any:
    """``node`` without titles, defaults, ``additionalProperties`` and object descriptions."""
    if isinstance(node, list):
        return [prompt_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    if in_properties:  # names -> schemas: a field may be called "title" or "default"
        return {k: prompt_schema(v) for k, v in node.items()}
    drop = {"title", "default", "additionalProperties"} | ({"description"} if node.get("type") == "object" else set())
    return {k: prompt_schema(v, in_properties=k in ("properties", "$defs")) for k, v in node.items() if k not in drop}


def correction_prompt(problems: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems[:20])
    return f"Your previous answer was rejected:\n{listed}\nReply again with only the corrected JSON object."


def truncation_problem(max_tokens: int | None) -> str:
    limit = f"max_tokens={max_tokens}" if max_tokens else "the server's token limit"
    return f"the answer was cut off at {limit} (finish_reason=length); answer with a shorter JSON object"


def check_answer(text: str | None, schema: type[BaseModel], validate: Validator | None) -> tuple[BaseModel | None, list[str]]:
    """Parses and validates one answer; returns (value, problems)."""
    obj = extract_json_object(text)
    if obj is None:
        return None, ["the answer contains no JSON object"]
    try:
        value = schema.model_validate(obj)
    except ValidationError as exc:
        return None, [validation_problem(e) for e in exc.errors()]
    problems = list(validate(value)) if validate else []
    return value, problems


def validation_problem(error: Mapping[str, Any]) -> str:
    """One pydantic error as a line the model can act on, quoting a wrong scalar it wrote."""
    where = ".".join(map(str, error["loc"])) or "(root)"
    value = error.get("input")
    got = f" (got {value!r})" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    return f"{where}: {error['msg']}{got}"


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
